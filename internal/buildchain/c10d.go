package buildchain

import (
	"context"
	"debug/elf"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// c10dShim is the C interface over libtorch's distributed engine (c10d)
// that package train/dist calls. Prepare copies it into the patched libtch
// folder, so cgo compiles it with libtch's flags against the libtorch found.
//
//go:embed c10d/pltune_c10d.cpp
var c10dShim []byte

// C10DShimFile is the shim's name inside the patched copy's libtch folder.
const C10DShimFile = "pltune_c10d.cpp"

// detectC10D fills lt's c10d fields. A backend counts only when libtorch
// exports its process group and the headers the c10d headers include are
// found: the backend's own (gloo/, nccl.h) and, for NCCL, CUDA's runtime.
func detectC10D(lt *Libtorch) {
	lt.C10DNotes = nil
	cpu := filepath.Join(lt.LibDir, "libtorch_cpu.so")
	if exportsSymbol(cpu, "ProcessGroupGloo") {
		if dir := findHeader("gloo/context.h", glooHeaderDirs(lt)); dir != "" {
			lt.Gloo = true
			lt.C10DIncludeDirs = appendNew(lt.C10DIncludeDirs, dir, lt.IncludeDirs)
		} else {
			lt.C10DNotes = append(lt.C10DNotes, "libtorch has Gloo but gloo's headers (gloo/context.h) are missing: install libgloo-dev (Debian) to enable it")
		}
	}
	if !lt.CUDA {
		return
	}
	cuda := filepath.Join(lt.LibDir, "libtorch_cuda.so")
	if !exportsSymbol(cuda, "ProcessGroupNCCL") {
		return
	}
	nccl := findHeader("nccl.h", ncclHeaderDirs(lt))
	rt := findHeader("cuda_runtime_api.h", cudaHeaderDirs(lt))
	switch {
	case nccl == "":
		lt.C10DNotes = append(lt.C10DNotes, "libtorch has NCCL but nccl.h is missing (install NCCL's headers or the nvidia-nccl Python package) to enable it")
	case rt == "":
		lt.C10DNotes = append(lt.C10DNotes, "libtorch has NCCL but CUDA's cuda_runtime_api.h is missing (set CUDA_HOME) to enable it")
	default:
		lt.NCCL = true
		lt.C10DIncludeDirs = appendNew(lt.C10DIncludeDirs, nccl, lt.IncludeDirs)
		lt.C10DIncludeDirs = appendNew(lt.C10DIncludeDirs, rt, lt.IncludeDirs)
		// PyTorch's wheels split CUDA's headers over nvidia-* packages
		// (cublas, cusparse, ...), which ATen's CUDA headers include.
		if lt.Root != "" {
			more, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Clean(lt.Root)), "nvidia", "*", "include"))
			for _, d := range more {
				lt.C10DIncludeDirs = appendNew(lt.C10DIncludeDirs, d, lt.IncludeDirs)
			}
		}
	}
}

// exportsSymbol reports whether lib's dynamic symbols include one whose
// (mangled) name contains part.
func exportsSymbol(lib, part string) bool {
	f, err := elf.Open(lib)
	if err != nil {
		return false
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return false
	}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF && strings.Contains(s.Name, part) {
			return true
		}
	}
	return false
}

// findHeader returns the first of dirs holding rel, or "".
func findHeader(rel string, dirs []string) string {
	for _, d := range dirs {
		if d != "" && fileExists(filepath.Join(d, rel)) {
			return d
		}
	}
	return ""
}

func glooHeaderDirs(lt *Libtorch) []string {
	return append(append([]string{}, lt.IncludeDirs...), "/usr/include", "/usr/local/include")
}

// cudaHome is CUDA_HOME or CUDA_PATH, else /usr/local/cuda.
func cudaHome() string {
	for _, v := range []string{"CUDA_HOME", "CUDA_PATH"} {
		if d := os.Getenv(v); d != "" {
			return d
		}
	}
	return "/usr/local/cuda"
}

// nvidiaPackage is where PyTorch's wheels find a CUDA component installed
// as an nvidia-* Python package: beside torch/ in site-packages.
func nvidiaPackage(lt *Libtorch, name string) string {
	if lt.Root == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(filepath.Clean(lt.Root)), "nvidia", name, "include")
}

func ncclHeaderDirs(lt *Libtorch) []string {
	dirs := append([]string{}, lt.IncludeDirs...)
	return append(dirs, nvidiaPackage(lt, "nccl"), filepath.Join(cudaHome(), "include"), "/usr/include", "/usr/local/include")
}

func cudaHeaderDirs(lt *Libtorch) []string {
	dirs := append([]string{}, lt.IncludeDirs...)
	dirs = append(dirs, filepath.Join(cudaHome(), "include"), nvidiaPackage(lt, "cuda_runtime"))
	// CUDA 13's wheels put the toolkit's headers in one package,
	// nvidia/cu13/include.
	if lt.Root != "" {
		more, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Clean(lt.Root)), "nvidia", "cu[0-9]*", "include"))
		dirs = append(dirs, more...)
	}
	return append(dirs, "/usr/include")
}

// appendNew appends dir to dirs unless it is already there or among have.
func appendNew(dirs []string, dir string, have []string) []string {
	for _, d := range append(append([]string{}, have...), dirs...) {
		if d == dir {
			return dirs
		}
	}
	return append(dirs, dir)
}

// c10dDefines are the macros the c10d headers (and the shim) guard the
// backends on.
func c10dDefines(lt *Libtorch) []string {
	var d []string
	if lt.Gloo {
		d = append(d, "-DUSE_C10D_GLOO")
	}
	if lt.NCCL {
		d = append(d, "-DUSE_C10D_NCCL")
	}
	return d
}

// prepareC10DShim writes the shim into the libtch folder and checks that it
// compiles with the backends lt enables. A backend whose headers do not
// compile with the shim is turned off in lt with a note, so gotch stays
// usable; a shim that does not compile even without backends is an error
// naming the file.
func prepareC10DShim(ctx context.Context, lt *Libtorch, libtch, cxx string) error {
	type combo struct{ gloo, nccl bool }
	gloo, nccl := lt.Gloo, lt.NCCL
	tries := []combo{{gloo, nccl}}
	if gloo && nccl {
		tries = append(tries, combo{true, false}, combo{false, true})
	}
	if gloo || nccl {
		tries = append(tries, combo{false, false})
	}
	var first, last error
	for _, c := range tries {
		lt.Gloo, lt.NCCL = c.gloo, c.nccl
		last = writeC10DShim(ctx, lt, libtch, cxx)
		if last == nil {
			if gloo && !c.gloo {
				lt.C10DNotes = append(lt.C10DNotes, "Gloo turned off: "+firstLines(first, 3))
			}
			if nccl && !c.nccl {
				lt.C10DNotes = append(lt.C10DNotes, "NCCL turned off: "+firstLines(first, 3))
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if first == nil {
			first = last
		}
	}
	return last
}

func firstLines(err error, n int) string {
	lines := strings.Split(err.Error(), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " ")
}

// writeC10DShim puts the shim into the libtch folder and checks that it
// compiles (syntax only) against lt, so a libtorch whose c10d headers do
// not fit fails at setup with the file named, not at the first go build.
func writeC10DShim(ctx context.Context, lt *Libtorch, libtch, cxx string) error {
	path := filepath.Join(libtch, C10DShimFile)
	if err := os.WriteFile(path, c10dShim, 0o644); err != nil {
		return err
	}
	abi := "0"
	if lt.CXX11ABI {
		abi = "1"
	}
	args := []string{"-std=c++17", "-fsyntax-only", "-w", "-D_GLIBCXX_USE_CXX11_ABI=" + abi}
	args = append(args, c10dDefines(lt)...)
	for _, d := range append(append([]string{}, lt.IncludeDirs...), lt.C10DIncludeDirs...) {
		args = append(args, "-I"+d)
	}
	args = append(args, C10DShimFile)
	cmd := exec.CommandContext(ctx, cxx, args...)
	cmd.Dir = libtch
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("buildchain: %s (pltune's c10d shim) does not compile against libtorch %s with %s: %v\n%s",
			path, lt.Version, strings.Join(c10dDefines(lt), " "), err, tail(out, 40))
	}
	return nil
}
