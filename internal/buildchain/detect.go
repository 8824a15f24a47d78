package buildchain

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Libtorch describes a libtorch installation the build links against.
type Libtorch struct {
	Root        string   // LIBTORCH as given, or "" for the system (Debian) install
	IncludeDirs []string // for -I: the root include dir and torch/csrc/api/include
	LibDir      string   // holding libtorch.so, libc10.so, libtorch_cpu.so
	Version     string   // from torch/csrc/api/include/torch/version.h
	CUDA        bool     // libtorch_cuda.so present
	CXX11ABI    bool     // built with _GLIBCXX_USE_CXX11_ABI=1
	BLAS        string   // the BLAS libtorch_cpu resolves to, as a path or a note
	// c10d (distributed) backends usable from pltune: exported by libtorch
	// and with the headers the c10d headers include.
	Gloo            bool
	NCCL            bool
	C10DIncludeDirs []string // extra -I for those headers
	C10DNotes       []string // why a backend libtorch has is not usable
}

// ErrNotFound means no libtorch was found and LIBTORCH was not set.
var ErrNotFound = errors.New("no libtorch found")

// systemPrefixes are where distribution packages put libtorch.
var systemPrefixes = []string{"/usr", "/usr/local"}

// Detect finds libtorch: under root when root is not empty (LIBTORCH, a
// directory with lib/ and include/, such as PyTorch's site-packages/torch),
// else a system install. It returns ErrNotFound when there is none.
func Detect(root string) (*Libtorch, error) {
	if root != "" {
		lt, err := inspect(root, filepath.Join(root, "include"), []string{filepath.Join(root, "lib")})
		if err != nil {
			return nil, fmt.Errorf("LIBTORCH=%s: %w", root, err)
		}
		lt.Root = root
		return lt, nil
	}
	for _, p := range systemPrefixes {
		inc := filepath.Join(p, "include")
		if _, err := os.Stat(filepath.Join(inc, "torch/csrc/api/include/torch/torch.h")); err != nil {
			continue
		}
		libs := []string{filepath.Join(p, "lib", multiarch()), filepath.Join(p, "lib")}
		if lt, err := inspect("", inc, libs); err == nil {
			return lt, nil
		}
	}
	return nil, ErrNotFound
}

func multiarch() string {
	switch {
	case fileExists("/usr/lib/x86_64-linux-gnu"):
		return "x86_64-linux-gnu"
	case fileExists("/usr/lib/aarch64-linux-gnu"):
		return "aarch64-linux-gnu"
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func inspect(root, inc string, libDirs []string) (*Libtorch, error) {
	api := filepath.Join(inc, "torch/csrc/api/include")
	if !fileExists(filepath.Join(api, "torch/torch.h")) {
		return nil, fmt.Errorf("no torch/torch.h under %s", api)
	}
	// Root is set before detectC10D, which looks beside it for the CUDA
	// headers PyTorch's wheels ship as nvidia-* packages.
	lt := &Libtorch{Root: root, IncludeDirs: []string{inc, api}}
	for _, d := range libDirs {
		if fileExists(filepath.Join(d, "libtorch_cpu.so")) && fileExists(filepath.Join(d, "libc10.so")) {
			lt.LibDir = d
			break
		}
	}
	if lt.LibDir == "" {
		return nil, fmt.Errorf("no libtorch_cpu.so and libc10.so in %s", strings.Join(libDirs, ", "))
	}
	// PyTorch 2.9 and later define the version in a header-only file
	// that torch/version.h includes.
	v, err := readVersion(filepath.Join(api, "torch/version.h"), filepath.Join(inc, "torch/headeronly/version.h"))
	if err != nil {
		return nil, err
	}
	lt.Version = v
	lt.CUDA = fileExists(filepath.Join(lt.LibDir, "libtorch_cuda.so"))
	abi, err := usesCXX11ABI(filepath.Join(lt.LibDir, "libc10.so"))
	if err != nil {
		return nil, err
	}
	lt.CXX11ABI = abi
	lt.BLAS = findBLAS(filepath.Join(lt.LibDir, "libtorch_cpu.so"))
	detectC10D(lt)
	return lt, nil
}

var versionDefine = regexp.MustCompile(`#define TORCH_VERSION_(MAJOR|MINOR|PATCH) (\d+)`)

// readVersion reads the version from the first of paths that defines it.
func readVersion(paths ...string) (string, error) {
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			if os.IsNotExist(err) && path != paths[0] {
				continue
			}
			return "", fmt.Errorf("reading libtorch version: %w", err)
		}
		parts := map[string]string{}
		for _, m := range versionDefine.FindAllSubmatch(b, -1) {
			parts[string(m[1])] = string(m[2])
		}
		if len(parts) == 3 {
			return parts["MAJOR"] + "." + parts["MINOR"] + "." + parts["PATCH"], nil
		}
	}
	return "", fmt.Errorf("%s: no TORCH_VERSION_MAJOR/MINOR/PATCH", strings.Join(paths, ", "))
}

// usesCXX11ABI tells the C++ ABI of a libtorch from its exported symbols:
// with _GLIBCXX_USE_CXX11_ABI=1, functions taking std::string mangle the
// std::__cxx11 namespace into their names.
func usesCXX11ABI(lib string) (bool, error) {
	f, err := elf.Open(lib)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", lib, err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return false, fmt.Errorf("reading symbols of %s: %w", lib, err)
	}
	for _, s := range syms {
		if strings.Contains(s.Name, "__cxx11") {
			return true, nil
		}
	}
	return false, nil
}

// findBLAS names the BLAS libtorch_cpu uses: the resolved libblas.so.3 for a
// distribution build, or the BLAS bundled into the library (MKL in PyTorch's
// wheels).
func findBLAS(lib string) string {
	f, err := elf.Open(lib)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	needed, _ := f.ImportedLibraries()
	for _, n := range needed {
		if !strings.HasPrefix(n, "libblas") && !strings.HasPrefix(n, "libopenblas") && !strings.HasPrefix(n, "libmkl") {
			continue
		}
		for _, dir := range ldPaths() {
			p := filepath.Join(dir, n)
			if r, err := filepath.EvalSymlinks(p); err == nil {
				if strings.Contains(r, "openblas") {
					return "OpenBLAS (" + r + ")"
				}
				if strings.Contains(r, "/blas/") {
					return "reference BLAS (" + r + "): slow; install libopenblas0-pthread"
				}
				return r
			}
		}
		return n + " (not found)"
	}
	if syms, err := f.DynamicSymbols(); err == nil {
		for _, s := range syms {
			if strings.HasPrefix(s.Name, "mkl_") {
				return "MKL (bundled)"
			}
		}
	}
	return "bundled or none"
}

// ldPaths lists the directories the dynamic linker searches by default.
func ldPaths() []string {
	dirs := []string{"/lib/" + multiarch(), "/usr/lib/" + multiarch(), "/lib", "/usr/lib", "/usr/local/lib"}
	f, err := os.Open("/etc/ld.so.conf.d")
	if err != nil {
		return dirs
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	for _, n := range names {
		c, err := os.Open(filepath.Join("/etc/ld.so.conf.d", n))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "/") {
				dirs = append(dirs, l)
			}
		}
		c.Close()
	}
	return dirs
}

// Describe is the one-paragraph summary setup prints.
func (lt *Libtorch) Describe() string {
	where := "system (" + lt.LibDir + ")"
	if lt.Root != "" {
		where = lt.Root
	}
	dev := "CPU"
	if lt.CUDA {
		dev = "CUDA"
	}
	abi := 0
	if lt.CXX11ABI {
		abi = 1
	}
	var be []string
	if lt.Gloo {
		be = append(be, "Gloo")
	}
	if lt.NCCL {
		be = append(be, "NCCL")
	}
	dist := "none"
	if len(be) > 0 {
		dist = strings.Join(be, ", ")
	}
	for _, n := range lt.C10DNotes {
		dist += "; " + n
	}
	return fmt.Sprintf("libtorch %s, %s, at %s, _GLIBCXX_USE_CXX11_ABI=%d, BLAS: %s, distributed: %s", lt.Version, dev, where, abi, lt.BLAS, dist)
}

// IsDebianLibtorch tells whether lt is the one Debian's libtorch-dev
// installs (under /usr/lib/<multiarch>).
func IsDebianLibtorch(lt *Libtorch) bool {
	return lt.Root == "" && lt.LibDir == "/usr/lib/"+multiarch()
}
