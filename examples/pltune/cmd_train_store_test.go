//go:build pltune_torch

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pretrain and sft train from token stores: two text stores mixed by
// weight with the mix reported, a resumed run continuing from its
// checkpoint, and a chat store packed; a store of the wrong type or
// tokenizer is refused.
func TestTrainFromStores(t *testing.T) {
	tok := trainedTokenizerDir(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(tinyConfig), 0o644)
	var texts [2]string
	for i := range texts {
		var b strings.Builder
		for k := range 30 {
			b.WriteString(`{"text": "Ala ma kota numer ` + strings.Repeat("x", k%7+i) + `. Stolicą Polski jest Warszawa."}` + "\n")
		}
		texts[i] = filepath.Join(dir, "t"+string(rune('a'+i))+".jsonl")
		os.WriteFile(texts[i], []byte(b.String()), 0o644)
	}
	stores := []string{filepath.Join(dir, "sa"), filepath.Join(dir, "sb")}
	for i, s := range stores {
		if code, out, errOut := runTrainCLI(t, "corpus", "tokenize", "--tokenizer", tok, "--out", s, "--quiet", texts[i]); code != 0 {
			t.Fatalf("tokenize: %d %s %s", code, out, errOut)
		}
	}
	out := filepath.Join(dir, "cpt")
	args := []string{"pretrain", "--model-config", cfg, "--tokenizer", tok, "--data", stores[0], "--data", stores[1],
		"--data-weights", "3,1", "--out", out, "--max-len", "32", "--batch-size", "2", "--epochs", "1", "--lr", "1e-3", "--save-every", "3"}
	code, stdout, stderr := runTrainCLI(t, append(args, "--max-steps", "3")...)
	if code != 0 {
		t.Fatalf("pretrain: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "data mix (tokens per source)") {
		t.Errorf("no mix report on stderr: %s", stderr)
	}
	var mix []struct {
		Name        string  `json:"name"`
		TakenTokens int64   `json:"taken_tokens"`
		Share       float64 `json:"share"`
	}
	b, err := os.ReadFile(filepath.Join(out, "data_mix.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &mix); err != nil || len(mix) != 2 || mix[0].Share < 0.7 || mix[0].Share > 0.8 {
		t.Fatalf("data_mix.json: %s (%v)", b, err)
	}
	code, stdout, stderr = runTrainCLI(t, append(args, "--max-steps", "5", "--resume", "--quiet")...)
	if code != 0 {
		t.Fatalf("resumed pretrain: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if recs := metricsLines(t, filepath.Join(out, "metrics.jsonl")); len(recs) != 5 || recs[3]["step"] != 4 {
		t.Fatalf("metrics after resuming: %v", recs)
	}

	chat := filepath.Join(dir, "chat.jsonl")
	os.WriteFile(chat, []byte(chatFile), 0o644)
	chatStore := filepath.Join(dir, "sc")
	if code, o, e := runTrainCLI(t, "corpus", "tokenize", "--tokenizer", tok, "--out", chatStore, "--quiet", "--max-len", "512", chat); code != 0 {
		t.Fatalf("tokenize chat: %d %s %s", code, o, e)
	}
	code, stdout, stderr = runTrainCLI(t, "sft", "--model-config", cfg, "--tokenizer", tok, "--data", chatStore, "--out", filepath.Join(dir, "sft"),
		"--max-len", "256", "--pack", "--epochs", "2", "--lr", "1e-3", "--quiet")
	if code != 0 || !strings.Contains(stdout, "trained 4 steps") {
		t.Fatalf("sft from a chat store: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr = runTrainCLI(t, "sft", "--model-config", cfg, "--tokenizer", tok, "--data", stores[0], "--out", filepath.Join(dir, "x"), "--quiet")
	if code != 1 || !strings.Contains(stderr, "is a text store") {
		t.Fatalf("sft on a text store: exit %d, %s", code, stderr)
	}
	other := trainedTokenizerDir(t)
	os.WriteFile(filepath.Join(other, "tokenizer_config.json"), []byte(`{}`), 0o644)
	code, _, stderr = runTrainCLI(t, "pretrain", "--model-config", cfg, "--tokenizer", other, "--data", stores[0], "--out", filepath.Join(dir, "y"), "--quiet")
	if code != 1 || !strings.Contains(stderr, "another tokenizer") {
		t.Fatalf("pretrain with another tokenizer: exit %d, %s", code, stderr)
	}
}
