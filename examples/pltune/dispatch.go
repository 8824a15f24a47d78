//go:build !pltune_torch

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// This flavour of pltune does not link libtorch: its tensor commands start
// the pltune-torch binary (see torch.go).
func init() {
	// Its commands stream corpora through small heaps that the default
	// GOGC would collect all the time: 400 cut corpus validate's CPU time
	// by a fifth for some 50 MB more (GOGC in the environment still wins).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	for _, c := range torchCommands {
		name := c.name
		register(&command{name: name, summary: c.summary, run: func(ctx context.Context, env *cliEnv, args []string) error {
			return runTorch(ctx, env, append([]string{name}, args...))
		}})
	}
	forwardEval = func(ctx context.Context, env *cliEnv, args []string) error {
		return runTorch(ctx, env, append([]string{"eval"}, args...))
	}
}

// torchEnvVar names the pltune-torch binary to use, overriding the search.
const torchEnvVar = "PLTUNE_TORCH"

// torchBinary finds pltune-torch: $PLTUNE_TORCH, then next to this
// executable, then on PATH. A pltune started by `go run` (its executable
// in the go build cache's temporary folder) falls back to `go run -tags
// pltune_torch` of the same package, so `go run ./examples/pltune sft ...`
// works in a checkout and in a module that requires pltune.
func torchBinary() ([]string, error) {
	if p := os.Getenv(torchEnvVar); p != "" {
		return []string{p}, nil
	}
	self, err := os.Executable()
	if err == nil {
		sib := filepath.Join(filepath.Dir(self), "pltune-torch")
		if st, err := os.Stat(sib); err == nil && !st.IsDir() {
			return []string{sib}, nil
		}
	}
	if p, err := exec.LookPath("pltune-torch"); err == nil {
		return []string{p}, nil
	}
	if bi, ok := debug.ReadBuildInfo(); ok && strings.Contains(self, "go-build") {
		if gobin, err := exec.LookPath("go"); err == nil {
			return []string{gobin, "run", "-tags", torchTag, bi.Path}, nil
		}
	}
	return nil, errors.New("this command needs libtorch, which this pltune does not link, and no pltune-torch was found " +
		"(next to pltune, on PATH, or in $" + torchEnvVar + "); build it beside pltune: " +
		"go build -tags " + torchTag + " -o \"$(dirname \"$(command -v pltune)\")/pltune-torch\" github.com/pltune/pltune/examples/pltune " +
		"(or make cli in a checkout)")
}

// runTorch runs args with pltune-torch, passing the standard streams and
// the exit status through; cancelling ctx sends it SIGTERM, which it
// treats as Ctrl-C (a checkpoint is written).
func runTorch(ctx context.Context, env *cliEnv, args []string) error {
	argv, err := torchBinary()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = env.stdin, env.stdout, env.stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Hour
	dieWithParent(cmd)
	// The parent-death signal belongs to the thread that starts the child.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err == nil {
		err = cmd.Wait()
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return &exitError{code: ee.ExitCode()}
	default:
		return fmt.Errorf("running %s: %w", argv[0], err)
	}
}
