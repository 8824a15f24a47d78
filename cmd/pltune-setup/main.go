// Command pltune-setup prepares the libtorch build chain for pltune and for
// any module that imports it. It imports nothing of gotch, so it builds on a
// machine where gotch does not yet:
//
//	go run github.com/pltune/pltune/cmd/pltune-setup@latest
//
// It finds libtorch (LIBTORCH, or a system install; on Debian it installs
// libtorch-dev and libopenblas0-pthread when neither is there), makes a
// patched copy of gotch v0.9.1 that builds against it, and points the
// current module's go.work at that copy. Running it again is fast: the copy
// is reused.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/pltune/pltune/internal/buildchain"
)

func main() {
	libtorch := flag.String("libtorch", os.Getenv("LIBTORCH"), "libtorch folder holding lib/ and include/ (default $LIBTORCH; empty: the system's)")
	module := flag.String("module", "", "module whose go.work to write (default: the module of the current directory)")
	cache := flag.String("cache", "", "folder for patched gotch copies (default: the user cache folder + /pltune)")
	noInstall := flag.Bool("no-install", false, "never install packages with apt")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *libtorch, *module, *cache, *noInstall); err != nil {
		fmt.Fprintln(os.Stderr, "pltune-setup:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, libtorch, module, cache string, noInstall bool) error {
	if module == "" {
		out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		gomod := strings.TrimSpace(string(out))
		if err != nil || gomod == "" || gomod == os.DevNull {
			return errors.New("not inside a Go module: run it from your module's folder or pass -module")
		}
		module = filepath.Dir(gomod)
	}
	lt, err := buildchain.Detect(libtorch)
	// With no LIBTORCH, Debian's packages (libtorch, OpenBLAS, gloo's
	// headers) are installed where missing, unless a libtorch from
	// elsewhere (/usr/local) is in use.
	if libtorch == "" && !noInstall && (errors.Is(err, buildchain.ErrNotFound) || (err == nil && buildchain.IsDebianLibtorch(lt))) {
		if err := buildchain.InstallDebian(ctx, os.Stdout); err != nil {
			return err
		}
		lt, err = buildchain.Detect("")
	}
	if err != nil {
		return err
	}
	p, err := buildchain.Prepare(ctx, lt, buildchain.Options{CacheDir: cache, Log: os.Stdout})
	if err != nil {
		return err
	}
	if err := buildchain.WriteWork(ctx, module, p); err != nil {
		return err
	}
	reused := ""
	if p.Reused {
		reused = " (reused)"
	}
	// The prepared copy's description: the c10d check may have turned a
	// backend off that detection found.
	fmt.Printf("libtorch: %s\n", p.Libtorch.Describe())
	fmt.Printf("gotch %s: %d generated functions stubbed as not available in libtorch %s\n", buildchain.GotchVersion, len(p.Stubbed), lt.Version)
	fmt.Printf("patched copy: %s%s\n", p.Dir, reused)
	fmt.Printf("go.work: %s\n", filepath.Join(module, "go.work"))
	return nil
}
