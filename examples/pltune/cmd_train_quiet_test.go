//go:build pltune_torch

package main

import (
	"os"
	"testing"

	"golang.org/x/term"
)

// TestQuietDrawsNoBar: --quiet gives the trainer no progress writer and no
// logger, even with the real standard error; without it, a standard error
// that is not a terminal gets no bar either.
func TestQuietDrawsNoBar(t *testing.T) {
	env := &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	f := &trainFlags{quiet: true, out: t.TempDir()}
	if cfg := f.trainerConfig(env); cfg.Progress != nil || cfg.Logger != nil {
		t.Errorf("--quiet: Progress %v, Logger %v", cfg.Progress, cfg.Logger)
	}
	f.quiet = false
	if term.IsTerminal(int(os.Stderr.Fd())) {
		return
	}
	if cfg := f.trainerConfig(env); cfg.Progress != nil || cfg.Logger == nil {
		t.Errorf("standard error is not a terminal here: Progress %v, Logger %v", cfg.Progress, cfg.Logger)
	}
}
