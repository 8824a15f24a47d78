package buildchain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The gotch module pltune builds on.
const (
	GotchModule  = "github.com/sugarme/gotch"
	GotchVersion = "v0.9.1"
)

// patchRevision changes whenever the patching itself changes, so copies made
// by an older setup are rebuilt rather than reused.
const patchRevision = "4"

const (
	generatedFile = "torch_api_generated.cpp.h"
	markerFile    = ".pltune-patched.json"
)

// Patched is a patched copy of gotch ready to build against one libtorch.
type Patched struct {
	Dir      string   `json:"dir"`
	Libtorch Libtorch `json:"libtorch"`
	Stubbed  []string `json:"stubbed"` // generated functions that report "not available"
	Reused   bool     `json:"-"`       // true when an earlier setup's copy was reused
}

// Options tunes Prepare.
type Options struct {
	CacheDir string    // where patched copies live; default: the user cache dir + "/pltune"
	CXX      string    // C++ compiler; default $CXX or g++
	Log      io.Writer // progress lines; default io.Discard
}

// Prepare returns a patched copy of gotch for lt, making it when no earlier
// setup made one: the module is copied from Go's module cache (never changed
// there), its cgo flags are rewritten for lt, and every generated function
// that does not compile against lt is stubbed. The copy's path depends only
// on gotch's version and lt, so Go's build cache reuses the one-time C++
// compile across clones.
func Prepare(ctx context.Context, lt *Libtorch, opts Options) (*Patched, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.CXX == "" {
		opts.CXX = os.Getenv("CXX")
	}
	if opts.CXX == "" {
		opts.CXX = "g++"
	}
	if opts.CacheDir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("buildchain: no cache dir (set XDG_CACHE_HOME or HOME): %w", err)
		}
		opts.CacheDir = filepath.Join(c, "pltune")
	}
	dir := filepath.Join(opts.CacheDir, copyName(lt))
	if p, err := readMarker(dir); err == nil {
		p.Reused = true
		return p, nil
	}
	src, err := gotchSource(ctx)
	if err != nil {
		return nil, err
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	if err := copyTree(src, tmp); err != nil {
		return nil, fmt.Errorf("buildchain: copying gotch: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "libtch", "lib.go"), []byte(cgoFlags(lt)), 0o644); err != nil {
		return nil, err
	}
	if err := patchFile(filepath.Join(tmp, "ts", "tensor-generated.go"), FreeReplacedHandles); err != nil {
		return nil, err
	}
	if err := patchFile(filepath.Join(tmp, "ts", "tensor-generated.go"), KeepArgsAlive); err != nil {
		return nil, err
	}
	fmt.Fprintf(opts.Log, "checking gotch's C++ against libtorch %s (a syntax-only compile, under a minute)\n", lt.Version)
	stubbed, err := stubUntilClean(ctx, lt, filepath.Join(tmp, "libtch"), opts)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(opts.Log, "checking pltune's c10d shim (distributed: %s)\n", strings.Join(c10dDefines(lt), " "))
	if err := prepareC10DShim(ctx, lt, filepath.Join(tmp, "libtch"), opts.CXX); err != nil {
		return nil, err
	}
	// The shim may have turned a backend off.
	if err := os.WriteFile(filepath.Join(tmp, "libtch", "lib.go"), []byte(cgoFlags(lt)), 0o644); err != nil {
		return nil, err
	}
	p := &Patched{Dir: dir, Libtorch: *lt, Stubbed: stubbed}
	b, _ := json.MarshalIndent(p, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, markerFile), b, 0o644); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	return p, nil
}

func copyName(lt *Libtorch) string {
	h := sha256.New()
	fmt.Fprintln(h, patchRevision, lt.Version, lt.CUDA, lt.CXX11ABI, lt.LibDir, strings.Join(lt.IncludeDirs, ":"),
		lt.Gloo, lt.NCCL, strings.Join(lt.C10DIncludeDirs, ":"))
	dev := "cpu"
	if lt.CUDA {
		dev = "cuda"
	}
	return fmt.Sprintf("gotch-%s-libtorch%s-%s-%s", GotchVersion, lt.Version, dev, hex.EncodeToString(h.Sum(nil))[:10])
}

func readMarker(dir string) (*Patched, error) {
	b, err := os.ReadFile(filepath.Join(dir, markerFile))
	if err != nil {
		return nil, err
	}
	var p Patched
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	p.Dir = dir
	return &p, nil
}

// gotchSource downloads gotch into Go's module cache (a no-op when it is
// there) and returns its directory.
func gotchSource(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", GotchModule+"@"+GotchVersion)
	cmd.Dir = os.TempDir() // outside any module, so go.work and go.mod do not interfere
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	_ = json.Unmarshal(out, &info)
	if err != nil || info.Dir == "" {
		return "", fmt.Errorf("buildchain: go mod download %s@%s: %v %s", GotchModule, GotchVersion, err, info.Error)
	}
	return info.Dir, nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

func isSystemDir(d string) bool {
	switch d {
	case "/usr/include", "/usr/local/include", "/usr/lib", "/lib", "/usr/lib/" + multiarch(), "/lib/" + multiarch():
		return true
	}
	return false
}

// cgoFlags is the patched libtch/lib.go: gotch's own file hard-codes CUDA
// libraries and the old C++ ABI.
func cgoFlags(lt *Libtorch) string {
	abi := "0"
	if lt.CXX11ABI {
		abi = "1"
	}
	var inc []string
	for _, d := range append(append([]string{}, lt.IncludeDirs...), lt.C10DIncludeDirs...) {
		if !isSystemDir(d) {
			inc = append(inc, "-I"+d)
		}
	}
	ld := []string{}
	if !isSystemDir(lt.LibDir) {
		ld = append(ld, "-L"+lt.LibDir, "-Wl,-rpath,"+lt.LibDir)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "// Code written by pltune's setup; DO NOT EDIT.\n// Built for %s.\n\npackage libtch\n\n", lt.Describe())
	fmt.Fprintf(&b, "// #cgo CFLAGS: -I${SRCDIR} -O1 -w -D_GLIBCXX_USE_CXX11_ABI=%s\n", abi)
	cxx := append(inc, c10dDefines(lt)...)
	fmt.Fprintf(&b, "// #cgo CXXFLAGS: -std=c++17 -I${SRCDIR} -O1 -w -D_GLIBCXX_USE_CXX11_ABI=%s %s\n", abi, strings.Join(cxx, " "))
	fmt.Fprintf(&b, "// #cgo LDFLAGS: %s -lstdc++ -ltorch -lc10 -ltorch_cpu\n", strings.Join(ld, " "))
	if lt.CUDA {
		// Nothing in gotch references libtorch_cuda's symbols directly, so a
		// plain -l would be dropped by --as-needed and CUDA would not register.
		b.WriteString("// #cgo LDFLAGS: -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed\n")
	}
	b.WriteString("import \"C\"\n")
	return b.String()
}

// stubUntilClean compiles torch_api.cpp syntax-only, stubs the generated
// functions the errors point into, and repeats until it compiles.
func stubUntilClean(ctx context.Context, lt *Libtorch, libtch string, opts Options) ([]string, error) {
	genPath := filepath.Join(libtch, generatedFile)
	var stubbed []string
	for round := 1; round <= 6; round++ {
		log, err := syntaxCheck(ctx, lt, libtch, opts.CXX)
		if err == nil {
			return stubbed, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		src, rerr := os.ReadFile(genPath)
		if rerr != nil {
			return nil, rerr
		}
		failing, ferr := FailingFunctions(log, generatedFile, src)
		if ferr != nil {
			return nil, fmt.Errorf("%w\n%s", ferr, tail(log, 40))
		}
		if len(failing) == 0 {
			return nil, fmt.Errorf("buildchain: gotch's hand-written C++ does not compile against libtorch %s (no generated function to stub): %v\n%s", lt.Version, err, tail(log, 40))
		}
		fmt.Fprintf(opts.Log, "round %d: stubbing %d generated functions that do not compile\n", round, len(failing))
		out, serr := StubFunctions(src, failing)
		if serr != nil {
			return nil, serr
		}
		if err := os.WriteFile(genPath, out, 0o644); err != nil {
			return nil, err
		}
		stubbed = append(stubbed, failing...)
	}
	return nil, errors.New("buildchain: gotch still does not compile after 6 rounds of stubbing")
}

func syntaxCheck(ctx context.Context, lt *Libtorch, libtch, cxx string) ([]byte, error) {
	abi := "0"
	if lt.CXX11ABI {
		abi = "1"
	}
	args := []string{"-std=c++17", "-fsyntax-only", "-w", "-fmax-errors=0", "-D_GLIBCXX_USE_CXX11_ABI=" + abi, "-I" + libtch}
	for _, d := range lt.IncludeDirs {
		args = append(args, "-I"+d)
	}
	args = append(args, "torch_api.cpp")
	cmd := exec.CommandContext(ctx, cxx, args...)
	cmd.Dir = libtch
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WriteWork points the Go workspace of the module in moduleDir at the
// patched copy: it creates go.work (with the module in it) when there is
// none, and sets the replace for gotch either way.
func WriteWork(ctx context.Context, moduleDir string, p *Patched) error {
	if _, err := os.Stat(filepath.Join(moduleDir, "go.work")); errors.Is(err, fs.ErrNotExist) {
		if err := goCmd(ctx, moduleDir, "work", "init", "."); err != nil {
			return err
		}
	}
	return goCmd(ctx, moduleDir, "work", "edit", "-replace="+GotchModule+"@"+GotchVersion+"="+p.Dir)
}

func goCmd(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// replacedHandle is how gotch's generated in-place ops (MulScalar_, Add_,
// Lerp_, …) take the handle libtorch returns: they overwrite the tensor's
// C pointer without freeing the old torch::Tensor, whose reference keeps
// the storage alive for ever. An in-place op on a temporary therefore leaked
// the whole temporary: measured on the tiny Llama, AdamW lost about 250 MB
// a step.
var replacedHandle = []byte("\n  ts.ctensor = *ptr\n")

// FreeReplacedHandles makes every generated in-place op free the handle it
// replaces (the new handle refers to the same tensor, so nothing the caller
// sees changes). It returns the patched source and how many ops it fixed.
func FreeReplacedHandles(src []byte) ([]byte, int) {
	n := bytes.Count(src, replacedHandle)
	return bytes.ReplaceAll(src, replacedHandle, []byte("\n  lib.AtFree(ts.ctensor)\n  ts.ctensor = *ptr\n")), n
}

func patchFile(path string, patch func([]byte) ([]byte, int)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("buildchain: %w", err)
	}
	out, n := patch(b)
	if n == 0 {
		return fmt.Errorf("buildchain: %s: nothing to patch (a gotch version other than %s?)", path, GotchVersion)
	}
	return os.WriteFile(path, out, 0o644)
}
