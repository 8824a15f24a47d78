//go:build pltune_torch

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/tokenize"
)

const preferenceSample = "../../corpus/samples/data/preferences.jsonl"

// preferenceSubset writes the first n pairs of the Polish sample file.
func preferenceSubset(t *testing.T, dir string, n int) string {
	t.Helper()
	f, err := os.Open(preferenceSample)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var lines []string
	for sc.Scan() && len(lines) < n {
		lines = append(lines, sc.Text())
	}
	path := filepath.Join(dir, "prefs.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// polishTokenizerDir trains a small byte-level BPE on the sample pairs, so
// the Polish answers take a few hundred tokens rather than a thousand.
func polishTokenizerDir(t *testing.T) string {
	t.Helper()
	var texts []string
	for p, err := range corpus.ReadPairs(context.Background(), preferenceSample, corpus.Options{}) {
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range [][]corpus.Message{p.Prompt, p.Chosen, p.Rejected} {
			for _, m := range part {
				texts = append(texts, m.Content)
			}
		}
	}
	tt, err := tokenize.TrainBPE(context.Background(), func(yield func(string) bool) {
		for _, s := range texts {
			if !yield(s) {
				return
			}
		}
	}, tokenize.BPETrainOptions{VocabSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := tt.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

const alignTinyConfig = `{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":1000,"hidden_size":32,
"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
"max_position_embeddings":1024,"rms_norm_eps":1e-5,"torch_dtype":"float32"}`

// sftCheckpoint trains a tiny model briefly with pltune sft and returns its
// final/ folder (model and tokenizer).
func sftCheckpoint(t *testing.T, tok, dir string) string {
	t.Helper()
	cfg := filepath.Join(dir, "config.json")
	data := filepath.Join(dir, "chat.jsonl")
	os.WriteFile(cfg, []byte(alignTinyConfig), 0o644)
	os.WriteFile(data, []byte(chatFile), 0o644)
	out := filepath.Join(dir, "sft")
	if code, stdout, stderr := runTrainCLI(t, "sft", "--model-config", cfg, "--tokenizer", tok, "--data", data, "--out", out,
		"--epochs", "2", "--batch-size", "2", "--lr", "3e-3", "--max-len", "256", "--quiet"); code != 0 {
		t.Fatalf("sft: exit %d\n%s\n%s", code, stdout, stderr)
	}
	return filepath.Join(out, "final")
}

// TestORPOCommand aligns a tiny SFT checkpoint on Polish preference pairs on
// CPU: the per-pair reward margin of the last epoch exceeds the first's,
// metrics.jsonl carries the preference metrics, final/ is a model folder.
func TestORPOCommand(t *testing.T) {
	dir := t.TempDir()
	model := sftCheckpoint(t, polishTokenizerDir(t), dir)
	data := preferenceSubset(t, dir, 8)
	out := filepath.Join(dir, "orpo")
	code, stdout, stderr := runTrainCLI(t, "orpo", "--model", model, "--data", data, "--out", out,
		"--epochs", "6", "--batch-size", "4", "--lr", "5e-3", "--beta", "0.5", "--max-len", "1024")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "8 pairs (8 read") || !strings.Contains(stderr, "rejected:") {
		t.Errorf("stderr lacks the pair summary and the dumped pair:\n%.600s", stderr)
	}
	if !strings.Contains(stdout, "reward_accuracy") {
		t.Errorf("stdout lacks the last step's metrics: %s", stdout)
	}
	recs := metricsLines(t, filepath.Join(out, "metrics.jsonl"))
	if len(recs) != 12 {
		t.Fatalf("%d metrics lines, want 12 (6 epochs × 2 steps)", len(recs))
	}
	for _, k := range []string{"rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy", "log_odds", "nll_loss", "logps_chosen", "logps_rejected"} {
		if _, ok := recs[0][k]; !ok {
			t.Errorf("metrics.jsonl lacks %s", k)
		}
	}
	firstEpoch := recs[0]["reward_margin"] + recs[1]["reward_margin"]
	lastEpoch := recs[10]["reward_margin"] + recs[11]["reward_margin"]
	t.Logf("reward margin per epoch %.4f → %.4f; accuracy %.2f/%.2f → %.2f/%.2f; nll %.3f → %.3f", firstEpoch/2, lastEpoch/2,
		recs[0]["reward_accuracy"], recs[1]["reward_accuracy"], recs[10]["reward_accuracy"], recs[11]["reward_accuracy"], recs[0]["nll_loss"], recs[11]["nll_loss"])
	if !(lastEpoch > firstEpoch) {
		t.Errorf("reward margin did not grow: first epoch %.4f, last %.4f", firstEpoch/2, lastEpoch/2)
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(out, "final", f)); err != nil {
			t.Errorf("final/ lacks %s", f)
		}
	}
}

// TestDPOCommand runs DPO on LoRA adapters (reference: adapters off) and,
// fully fine-tuned, against --ref-model; both start at loss ln 2 because
// policy and reference agree before the first update.
func TestDPOCommand(t *testing.T) {
	dir := t.TempDir()
	model := sftCheckpoint(t, polishTokenizerDir(t), dir)
	data := preferenceSubset(t, dir, 4)
	for name, extra := range map[string][]string{
		"lora":      {"--lora-rank", "4", "--lora-dropout", "0"},
		"ref-model": {"--ref-model", model},
	} {
		out := filepath.Join(dir, name)
		args := append([]string{"dpo", "--model", model, "--data", data, "--out", out, "--max-steps", "2", "--batch-size", "2",
			"--lr", "1e-3", "--max-len", "1024", "--quiet"}, extra...)
		code, stdout, stderr := runTrainCLI(t, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", name, code, stdout, stderr)
		}
		recs := metricsLines(t, filepath.Join(out, "metrics.jsonl"))
		if len(recs) != 2 || recs[0]["loss"] < 0.6931 || recs[0]["loss"] > 0.6932 {
			t.Errorf("%s: metrics %v; want 2 steps, the first at loss ln 2", name, recs)
		}
		// A resumed run reuses the reference log-probs kept in --out.
		args = append(args[:len(args)-len(extra)-1], append(extra, "--resume", "--max-steps", "3")...)
		code, _, stderr = runTrainCLI(t, args...)
		if code != 0 || !strings.Contains(stderr, "reference log-probs of 4 pairs from "+filepath.Join(out, "reference_logps.json")) {
			t.Errorf("%s: resume: exit %d, stderr %.400q; want the reference log-probs reused", name, code, stderr)
		}
		if recs := metricsLines(t, filepath.Join(out, "metrics.jsonl")); len(recs) != 3 {
			t.Errorf("%s: resumed run has %d metrics lines, want 3", name, len(recs))
		}
	}
}

// TestAlignRankedData: a ranked-responses file becomes pairs (3 ranked
// answers give 3 pairs) and --min-margin filters rated pairs.
func TestAlignRankedData(t *testing.T) {
	tok := polishTokenizerDir(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(alignTinyConfig), 0o644)
	ranked := filepath.Join(dir, "ranked.jsonl")
	os.WriteFile(ranked, []byte(`{"id":"r1","prompt":"Jaka jest stolica Polski?","responses":[{"content":"Kraków.","rank":3},{"content":"Stolicą Polski jest Warszawa.","rank":1},{"content":"Warszawa.","rank":2}]}`+"\n"), 0o644)
	rated := preferenceSubset(t, dir, 10)
	out := filepath.Join(dir, "out")
	code, _, stderr := runTrainCLI(t, "orpo", "--model-config", cfg, "--tokenizer", tok, "--data", ranked, "--data", rated,
		"--min-margin", "4", "--out", out, "--max-steps", "1", "--max-len", "1024")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The sample's ratings: how many of the first 10 differ by 4 or more.
	kept := 0
	for p, err := range corpus.ReadPairs(context.Background(), rated, corpus.Options{}) {
		if err != nil {
			t.Fatal(err)
		}
		if p.ChosenRating == nil || *p.ChosenRating-*p.RejectedRating >= 4 {
			kept++
		}
	}
	if kept == 10 {
		t.Fatal("the margin filters nothing in the sample; the test checks nothing")
	}
	want := fmt.Sprintf("%d pairs (13 read; dropped: %d below --min-margin", 3+kept, 10-kept)
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr %.300q; want %q", stderr, want)
	}
}

func TestAlignCommandsUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"orpo", "--ref-model", "x"}, "flag provided but not defined: -ref-model"},
		{[]string{"dpo", "--model", "m", "--out", "o", "--data", "d", "--beta", "0"}, "--beta 0: want > 0"},
		{[]string{"orpo", "--model", "m", "--out", "o", "--data", "d", "--beta", "-1"}, "--beta -1"},
		{[]string{"orpo", "--model", "m", "--data", "d"}, "--out is required"},
		{[]string{"dpo", "--model", "m", "--out", "o", "--data", "d", "--min-margin", "-2"}, "--min-margin -2"},
	} {
		code, _, stderr := runTrainCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", c.args, code, stderr, c.want)
		}
	}
	for _, c := range []struct{ cmd, flag string }{{"orpo", "-nll-on-prompt"}, {"dpo", "-ref-model"}, {"dpo", "-lora-rank"}} {
		if code, out, _ := runTrainCLI(t, c.cmd, "--help"); code != 0 || !strings.Contains(out, c.flag) || !strings.Contains(out, "-beta") {
			t.Errorf("%s --help: exit %d, lacks %s or -beta", c.cmd, code, c.flag)
		}
	}
}

// TestAlignBadData: a bad record stops the command with one line naming
// the file and line once.
func TestAlignBadData(t *testing.T) {
	tok := polishTokenizerDir(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(alignTinyConfig), 0o644)
	data := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(data, []byte(`{"chosen":[{"role":"user","content":"Hej"},{"role":"assistant","content":"Cześć!"}],"rejected":[{"role":"user","content":"Hej"},{"role":"assistant","content":"Siema."}]}
{"chosen":[{"role":"user","content":"Hej"},{"role":"asistant","content":"Cześć!"}],"rejected":[{"role":"user","content":"Hej"},{"role":"assistant","content":"Siema."}]}
`), 0o644)
	code, _, stderr := runTrainCLI(t, "orpo", "--model-config", cfg, "--tokenizer", tok, "--data", data, "--out", filepath.Join(dir, "out"), "--quiet")
	if code != 1 || strings.Count(stderr, "bad.jsonl") != 1 || !strings.Contains(stderr, "line 2") || !strings.Contains(stderr, "asistant") {
		t.Fatalf("exit %d, stderr %q; want 1 and the file named once with line 2 and the bad role", code, stderr)
	}
}
