//go:build !pltune_torch

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The default pltune does not link libtorch: nothing it imports reaches
// gotch.
func TestPureBuildHasNoLibtorch(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gobin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "sugarme/gotch") {
		t.Fatal("the default pltune imports gotch")
	}
	if commands["sft"] == nil || commands["pretrain"] == nil || commands["generate"] == nil {
		t.Fatal("the tensor commands are not listed")
	}
}

// A tensor command runs pltune-torch with the same arguments and streams,
// and comes back with its exit status; without one the error says how to
// build it.
func TestTensorCommandsStartTorchBinary(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "pltune-torch")
	os.WriteFile(fake, []byte("#!/bin/sh\necho \"args: $*\"\nread line\necho \"stdin: $line\" >&2\nexit 3\n"), 0o755)
	t.Setenv(torchEnvVar, fake)
	code, out, errOut := runCLIInput(t, "hello\n", "sft", "--data", "x y", "--out", "o")
	if code != 3 || out != "args: sft --data x y --out o\n" || errOut != "stdin: hello\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, _, _ = runCLIInput(t, "", "eval", "--task", "samples", "--model", "m", "--out", "o")
	if code != 3 {
		t.Fatalf("eval --model: exit %d, want pltune-torch's 3", code)
	}
	t.Setenv(torchEnvVar, "")
	t.Setenv("PATH", "")
	code, _, errOut = runCLIInput(t, "", "pretrain", "--help")
	if code != 1 || !strings.Contains(errOut, "-tags pltune_torch") {
		t.Fatalf("without pltune-torch: exit %d, %q", code, errOut)
	}
}
