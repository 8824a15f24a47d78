//go:build pltune_torch

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const tinyConfig = `{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":300,"hidden_size":32,
"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
"max_position_embeddings":256,"rms_norm_eps":1e-5,"torch_dtype":"float32"}`

func runTrainCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func metricsLines(t *testing.T, path string) []map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []map[string]float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r map[string]float64
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestSFTCommand trains a random tiny model on a small chat file on CPU:
// metrics.jsonl has a line per step and final/ is a Hugging Face folder.
func TestSFTCommand(t *testing.T) {
	tok := trainedTokenizerDir(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	data := filepath.Join(dir, "chat.jsonl")
	os.WriteFile(cfg, []byte(tinyConfig), 0o644)
	os.WriteFile(data, []byte(chatFile), 0o644)
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runTrainCLI(t, "sft", "--model-config", cfg, "--init", "random", "--seed", "3", "--tokenizer", tok,
		"--data", data, "--out", out, "--epochs", "3", "--batch-size", "2", "--lr", "3e-3", "--max-len", "128", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	recs := metricsLines(t, filepath.Join(out, "metrics.jsonl"))
	if len(recs) != 6 {
		t.Fatalf("%d metrics lines, want 6 (3 epochs × 2 steps)", len(recs))
	}
	if !(recs[5]["loss"] < recs[0]["loss"]) {
		t.Errorf("loss did not fall: %v → %v", recs[0]["loss"], recs[5]["loss"])
	}
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(out, "final", f)); err != nil {
			t.Errorf("final/ lacks %s", f)
		}
	}
	var gen struct {
		EOS json.RawMessage `json:"eos_token_id"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "final", "generation_config.json"))
	if err := json.Unmarshal(b, &gen); err != nil || len(gen.EOS) == 0 {
		t.Errorf("generation_config.json has no eos_token_id: %s (%v)", b, err)
	}
	// Resume after the end is a no-op that still succeeds.
	if code, _, stderr := runTrainCLI(t, "sft", "--model-config", cfg, "--seed", "3", "--tokenizer", tok, "--data", data, "--out", out,
		"--epochs", "3", "--batch-size", "2", "--max-len", "128", "--resume", "--quiet"); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr)
	}
}

func TestPretrainCommand(t *testing.T) {
	tok := trainedTokenizerDir(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(tinyConfig), 0o644)
	text := filepath.Join(dir, "text.txt")
	os.WriteFile(text, []byte(strings.Repeat("Ala ma kota, a kot ma Alę.\nStolicą Polski jest Warszawa.\n\nCześć! Jak się masz?\n\n", 20)), 0o644)
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runTrainCLI(t, "pretrain", "--model-config", cfg, "--tokenizer", tok, "--data", text,
		"--out", out, "--max-len", "64", "--batch-size", "2", "--epochs", "2", "--lr", "3e-3", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	recs := metricsLines(t, filepath.Join(out, "metrics.jsonl"))
	if len(recs) < 2 || !(recs[len(recs)-1]["loss"] < recs[0]["loss"]) {
		t.Fatalf("metrics %v: loss did not fall", recs)
	}
}

func TestTrainCommandsUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sft", "--bogus"}, "flag provided but not defined"},
		{[]string{"sft", "--out", "x", "--data", "y"}, "exactly one of --model"},
		{[]string{"pretrain", "--model", "m", "--data", "d"}, "--out is required"},
		{[]string{"sft", "--model", "m", "--out", "o", "--data", "d", "--device", "tpu"}, `device "tpu"`},
		{[]string{"sft", "--model", "m", "--out", "o", "--data", "d", "--dtype", "int4"}, `dtype "int4"`},
		{[]string{"sft", "--model-config", "c", "--tokenizer", "t", "--base", "b", "--out", "o", "--data", "d"}, "--base is for a --model adapter folder"},
	} {
		code, _, stderr := runTrainCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", c.args, code, stderr, c.want)
		}
	}
	if code, out, _ := runTrainCLI(t, "sft", "--help"); code != 0 || !strings.Contains(out, "-lora-rank") {
		t.Errorf("sft --help: exit %d, %q", code, out)
	}
}

// TestSFTUnderLaunch: `pltune launch --nproc-per-node 2 -- pltune sft ...`
// trains one model with two ranks: rank 0 alone writes metrics and the
// final model, and the steps are those of the global batch (2 ranks × 1).
func TestSFTUnderLaunch(t *testing.T) {
	if testing.Short() {
		t.Skip("two processes")
	}
	tok := trainedTokenizerDir(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	data := filepath.Join(dir, "chat.jsonl")
	os.WriteFile(cfg, []byte(tinyConfig), 0o644)
	os.WriteFile(data, []byte(chatFile), 0o644)
	out := filepath.Join(dir, "out")
	t.Setenv(cliEnvVar, "1")
	code, stdout, stderr := runTrainCLI(t, "launch", "--nproc-per-node", "2", "--master-port", strconv.Itoa(freeTCPPort(t)), "--",
		os.Args[0], "sft", "--model-config", cfg, "--tokenizer", tok, "--data", data, "--out", out,
		"--epochs", "2", "--batch-size", "1", "--max-len", "128", "--lr", "3e-3", "--quiet")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	recs := metricsLines(t, filepath.Join(out, "metrics.jsonl"))
	if len(recs) != 4 { // 4 samples / (1 per rank × 2 ranks) × 2 epochs
		t.Fatalf("%d metrics lines, want 4 (one writer, global batch 2)", len(recs))
	}
	if _, err := os.Stat(filepath.Join(out, "final", "model.safetensors")); err != nil {
		t.Fatalf("no final model: %v", err)
	}
}

func freeTCPPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestPretrainGradientCheckpointing: --gradient-checkpointing trains the
// same run (equal losses step by step, to float32 rounding) as without.
func TestPretrainGradientCheckpointing(t *testing.T) {
	tok := trainedTokenizerDir(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(tinyConfig), 0o644)
	text := filepath.Join(dir, "text.txt")
	os.WriteFile(text, []byte(strings.Repeat("Ala ma kota, a kot ma Alę.\nStolicą Polski jest Warszawa.\n\nCześć! Jak się masz?\n\n", 20)), 0o644)
	var losses [2][]float64
	for i, extra := range [][]string{nil, {"--gradient-checkpointing"}} {
		out := filepath.Join(dir, "out"+strconv.Itoa(i))
		args := append([]string{"pretrain", "--model-config", cfg, "--tokenizer", tok, "--data", text,
			"--out", out, "--max-len", "64", "--batch-size", "2", "--max-steps", "3", "--lr", "3e-3", "--quiet"}, extra...)
		if code, stdout, stderr := runTrainCLI(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", extra, code, stdout, stderr)
		}
		for _, r := range metricsLines(t, filepath.Join(out, "metrics.jsonl")) {
			losses[i] = append(losses[i], r["loss"])
		}
	}
	if len(losses[0]) != 3 || len(losses[1]) != 3 {
		t.Fatalf("losses %v", losses)
	}
	for s := range losses[0] {
		if d := losses[0][s] - losses[1][s]; d > 1e-5 || d < -1e-5 {
			t.Errorf("step %d: loss %v with checkpointing, %v without", s+1, losses[1][s], losses[0][s])
		}
	}
}
