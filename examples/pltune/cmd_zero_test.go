//go:build pltune_torch

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pltune/pltune/train/safetensors"
)

// TestSFTZeroUnderLaunch: `pltune launch -- pltune sft --zero-stage 2`
// and `--zero-stage 3 --gradient-checkpointing` train the run plain data
// parallel does (equal losses step by step), their checkpoints hold one
// optimizer shard per rank, and final/ holds the whole model.
func TestSFTZeroUnderLaunch(t *testing.T) {
	if testing.Short() {
		t.Skip("two processes")
	}
	tok := trainedTokenizerDir(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	data := filepath.Join(dir, "chat.jsonl")
	os.WriteFile(cfg, []byte(tinyConfig), 0o644)
	os.WriteFile(data, []byte(chatFile), 0o644)
	t.Setenv(cliEnvVar, "1")
	var losses [3][]float64
	for i, extra := range [][]string{nil, {"--zero-stage", "2"}, {"--zero-stage", "3", "--gradient-checkpointing"}} {
		out := filepath.Join(dir, "out"+strconv.Itoa(i))
		args := append([]string{"launch", "--nproc-per-node", "2", "--master-port", strconv.Itoa(freeTCPPort(t)), "--",
			os.Args[0], "sft", "--model-config", cfg, "--tokenizer", tok, "--data", data, "--out", out,
			"--epochs", "2", "--batch-size", "1", "--max-len", "128", "--lr", "3e-3", "--quiet"}, extra...)
		code, stdout, stderr := runTrainCLI(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", extra, code, stdout, stderr)
		}
		for _, r := range metricsLines(t, filepath.Join(out, "metrics.jsonl")) {
			losses[i] = append(losses[i], r["loss"])
		}
		if extra != nil {
			for r := range 2 {
				f := filepath.Join(out, "checkpoint-4", "optimizer-zero-rank"+strconv.Itoa(r)+"-of-2.safetensors")
				if _, err := os.Stat(f); err != nil {
					t.Errorf("no optimizer shard of rank %d: %v", r, err)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "final", "model.safetensors")); err != nil {
				t.Errorf("no final model: %v", err)
			}
			// pltune merge consolidates the last checkpoint's shards into
			// the weights final/ holds.
			merged := filepath.Join(out, "merged")
			if code, stdout, stderr := runTrainCLI(t, "merge", "--model", filepath.Join(out, "checkpoint-4"), "--out", merged); code != 0 {
				t.Fatalf("merge of the ZeRO checkpoint: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			sameWeights(t, filepath.Join(out, "final"), merged)
		}
	}
	// From a model folder, stage 3 loads each rank's piece of the weights
	// (train.OpenOptions.Shard) and trains as plain data parallel does
	// from the whole model.
	var fromFolder [2][]float64
	for i, extra := range [][]string{nil, {"--zero-stage", "3", "--gradient-checkpointing"}} {
		out := filepath.Join(dir, "folder"+strconv.Itoa(i))
		args := append([]string{"launch", "--nproc-per-node", "2", "--master-port", strconv.Itoa(freeTCPPort(t)), "--",
			os.Args[0], "sft", "--model", filepath.Join(dir, "out0", "final"), "--tokenizer", tok, "--data", data, "--out", out,
			"--epochs", "1", "--batch-size", "1", "--max-len", "128", "--lr", "3e-3", "--quiet"}, extra...)
		if code, stdout, stderr := runTrainCLI(t, args...); code != 0 {
			t.Fatalf("from a folder %v: exit %d\nstdout: %s\nstderr: %s", extra, code, stdout, stderr)
		}
		for _, r := range metricsLines(t, filepath.Join(out, "metrics.jsonl")) {
			fromFolder[i] = append(fromFolder[i], r["loss"])
		}
	}
	if len(fromFolder[0]) == 0 || len(fromFolder[0]) != len(fromFolder[1]) {
		t.Fatalf("losses from a folder: %v", fromFolder)
	}
	for s := range fromFolder[0] {
		if d := fromFolder[0][s] - fromFolder[1][s]; d > 1e-5 || d < -1e-5 {
			t.Errorf("from a folder, step %d: loss %v with --zero-stage 3 (sharded load), %v without", s+1, fromFolder[1][s], fromFolder[0][s])
		}
	}
	for i := 1; i < len(losses); i++ {
		if len(losses[0]) != 4 || len(losses[i]) != 4 {
			t.Fatalf("losses %v", losses)
		}
		for s := range losses[0] {
			if d := losses[0][s] - losses[i][s]; d > 1e-5 || d < -1e-5 {
				t.Errorf("step %d: loss %v with --zero-stage %d, %v without", s+1, losses[i][s], i+1, losses[0][s])
			}
		}
	}
}

// sameWeights fails unless folders a and b hold the same tensors with the
// same bytes.
func sameWeights(t *testing.T, a, b string) {
	t.Helper()
	sa, err := safetensors.OpenDir(a)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	sb, err := safetensors.OpenDir(b)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if na, nb := sa.Names(), sb.Names(); !slices.Equal(na, nb) {
		t.Fatalf("tensors of %s: %v; of %s: %v", a, na, b, nb)
	}
	for _, n := range sa.Names() {
		x, err := sa.ReadRaw(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		y, err := sb.ReadRaw(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between %s and %s", n, a, b)
		}
	}
}

func TestZeroFlagsUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sft", "--model", "m", "--out", "o", "--data", "d", "--zero-stage", "4"}, "--zero-stage 4"},
		{[]string{"sft", "--model", "m", "--out", "o", "--data", "d", "--offload-optimizer"}, "--offload-optimizer needs"},
		{[]string{"sft", "--model", "m", "--out", "o", "--data", "d", "--zero-stage", "3"}, "needs --gradient-checkpointing"},
	} {
		code, _, stderr := runTrainCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
}
