package buildchain

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestC10DFlags(t *testing.T) {
	for _, c := range []struct {
		name      string
		lt        Libtorch
		want, not []string
	}{
		{"none", Libtorch{Version: "1.13.0", LibDir: "/usr/lib"}, nil, []string{"USE_C10D"}},
		{"gloo", Libtorch{Version: "1.13.0", LibDir: "/usr/lib", Gloo: true}, []string{"-DUSE_C10D_GLOO"}, []string{"USE_C10D_NCCL"}},
		{"nccl", Libtorch{Version: "2.4.0", LibDir: "/opt/torch/lib", CUDA: true, Gloo: true, NCCL: true,
			C10DIncludeDirs: []string{"/opt/nvidia/nccl/include", "/usr/local/cuda/include"}},
			[]string{"-DUSE_C10D_GLOO", "-DUSE_C10D_NCCL", "-I/opt/nvidia/nccl/include", "-I/usr/local/cuda/include"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := cgoFlags(&c.lt)
			var cxx string
			for _, l := range strings.Split(f, "\n") {
				if strings.Contains(l, "CXXFLAGS") {
					cxx = l
				}
			}
			for _, w := range c.want {
				if !strings.Contains(cxx, w) {
					t.Errorf("CXXFLAGS lack %q: %s", w, cxx)
				}
			}
			for _, n := range c.not {
				if strings.Contains(cxx, n) {
					t.Errorf("CXXFLAGS have %q: %s", n, cxx)
				}
			}
		})
	}
	a := &Libtorch{Version: "1.13.0", LibDir: "/usr/lib"}
	b := *a
	b.Gloo = true
	if copyName(a) == copyName(&b) {
		t.Error("copies with and without Gloo share a folder")
	}
}

func TestAppendNew(t *testing.T) {
	got := appendNew([]string{"/a"}, "/b", []string{"/c"})
	got = appendNew(got, "/a", nil)
	got = appendNew(got, "/c", []string{"/c"})
	if strings.Join(got, ":") != "/a:/b" {
		t.Fatalf("appendNew gave %v, want [/a /b]", got)
	}
}

// TestDetectC10DHere checks detection against this machine's libtorch: a
// Debian libtorch exports ProcessGroupGloo, so Gloo is either enabled or
// explained.
func TestDetectC10DHere(t *testing.T) {
	lt, err := Detect(os.Getenv("LIBTORCH"))
	if err != nil {
		t.Skipf("no libtorch here: %v", err)
	}
	if !exportsSymbol(filepath.Join(lt.LibDir, "libtorch_cpu.so"), "ProcessGroupGloo") {
		t.Skip("this libtorch has no Gloo")
	}
	if !lt.Gloo && len(lt.C10DNotes) == 0 {
		t.Fatalf("libtorch exports ProcessGroupGloo but Detect neither enabled Gloo nor said why: %+v", lt)
	}
	if exportsSymbol(filepath.Join(lt.LibDir, "libtorch_cpu.so"), "NoSuchSymbolAnywhere") {
		t.Fatal("exportsSymbol matched a symbol that does not exist")
	}
}

// TestC10DShimCompiles runs the setup's syntax-only check of the shim
// against this machine's libtorch, and makes sure a broken shim is reported
// with its file named.
func TestC10DShimCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles C++ (about 20 s)")
	}
	lt, err := Detect(os.Getenv("LIBTORCH"))
	if err != nil {
		t.Skipf("no libtorch here: %v", err)
	}
	dir := t.TempDir()
	if err := writeC10DShim(context.Background(), lt, dir, "g++"); err != nil {
		t.Fatal(err)
	}
	saved := c10dShim
	defer func() { c10dShim = saved }()
	c10dShim = []byte("int broken( {\n") // fails fast: no headers to parse
	err = writeC10DShim(context.Background(), lt, dir, "g++")
	if err == nil || !strings.Contains(err.Error(), C10DShimFile) {
		t.Fatalf("a broken shim gave %v, want an error naming %s", err, C10DShimFile)
	}
}

// TestC10DShimFallback: a backend whose headers break the shim is turned
// off with a note instead of failing the setup; a shim that is broken
// without any backend is an error naming its file.
func TestC10DShimFallback(t *testing.T) {
	saved := c10dShim
	defer func() { c10dShim = saved }()
	for _, c := range []struct {
		name             string
		src              string
		gloo, nccl       bool
		wantGloo, wantNC bool
		wantNote, errHas string
	}{
		{"gloo breaks", "#ifdef USE_C10D_GLOO\n#error gloo headers broken\n#endif\nint ok;\n", true, true, false, true, "Gloo turned off", ""},
		{"nccl breaks", "#ifdef USE_C10D_NCCL\n#error nccl headers broken\n#endif\nint ok;\n", true, true, true, false, "NCCL turned off", ""},
		{"both break", "#if defined(USE_C10D_NCCL) || defined(USE_C10D_GLOO)\n#error broken\n#endif\nint ok;\n", true, true, false, false, "NCCL turned off", ""},
		{"all fine", "int ok;\n", true, false, true, false, "", ""},
		{"broken alone", "int broken( {\n", true, false, false, false, "", C10DShimFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			c10dShim = []byte(c.src)
			lt := &Libtorch{Version: "test", Gloo: c.gloo, NCCL: c.nccl}
			err := prepareC10DShim(context.Background(), lt, t.TempDir(), "g++")
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("error %v, want one naming %s", err, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if lt.Gloo != c.wantGloo || lt.NCCL != c.wantNC {
				t.Errorf("Gloo %v NCCL %v, want %v %v", lt.Gloo, lt.NCCL, c.wantGloo, c.wantNC)
			}
			notes := strings.Join(lt.C10DNotes, "\n")
			if (c.wantNote == "") != (notes == "") || !strings.Contains(notes, c.wantNote) {
				t.Errorf("notes %q, want %q", notes, c.wantNote)
			}
		})
	}
}
