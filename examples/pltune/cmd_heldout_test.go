//go:build pltune_torch

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --eval-every holds out rows of raw text and of a token store and logs
// their loss; a bad line of a data file stops pretrain with its file and
// line.
func TestPretrainHeldOutAndBadData(t *testing.T) {
	tok := trainedTokenizerDir(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(tinyConfig), 0o644)
	var b strings.Builder
	for k := range 40 {
		b.WriteString(`{"text": "Ala ma kota numer ` + strings.Repeat("x", k%7) + `. Stolicą Polski jest Warszawa."}` + "\n")
	}
	text := filepath.Join(dir, "t.jsonl")
	os.WriteFile(text, []byte(b.String()), 0o644)
	store := filepath.Join(dir, "store")
	if code, o, e := runTrainCLI(t, "corpus", "tokenize", "--tokenizer", tok, "--out", store, "--quiet", text); code != 0 {
		t.Fatalf("tokenize: %d %s %s", code, o, e)
	}
	for _, data := range []string{text, store} {
		out := filepath.Join(dir, "out-"+filepath.Base(data))
		code, stdout, stderr := runTrainCLI(t, "pretrain", "--model-config", cfg, "--tokenizer", tok, "--data", data, "--out", out,
			"--max-len", "32", "--batch-size", "2", "--max-steps", "2", "--eval-every", "1", "--lr", "1e-3", "--quiet")
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", data, code, stdout, stderr)
		}
		recs := metricsLines(t, filepath.Join(out, "metrics.jsonl"))
		if len(recs) != 2 {
			t.Fatalf("%s: %d metrics lines, want 2", data, len(recs))
		}
		for _, r := range recs {
			if _, ok := r["eval_loss"]; !ok {
				t.Errorf("%s: step %v has no eval_loss: %v", data, r["step"], r)
			}
		}
	}

	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"text\": \"Ala ma kota.\"}\n\n{\"tekst\": \"Kot ma Alę.\"}\n"), 0o644)
	code, _, stderr := runTrainCLI(t, "pretrain", "--model-config", cfg, "--tokenizer", tok, "--data", text, "--data", bad,
		"--out", filepath.Join(dir, "bad"), "--max-len", "32", "--quiet")
	if code != 1 || !strings.Contains(stderr, bad+": line 3: missing field") {
		t.Errorf("bad data: exit %d, stderr %q; want 1 and the file and line named", code, stderr)
	}
}
