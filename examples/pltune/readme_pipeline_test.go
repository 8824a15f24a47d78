//go:build pltune_torch

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/train"
)

// tinyBaseFolder writes a random Llama with the Polish BPE tokenizer as a
// Hugging Face model folder: what `--model BASE` points at.
func tinyBaseFolder(t *testing.T, dir string) string {
	t.Helper()
	tok := polishTokenizerDir(t)
	cfg, err := train.ParseConfig([]byte(alignTinyConfig))
	if err != nil {
		t.Fatal(err)
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	base := filepath.Join(dir, "base")
	if err := m.Save(base, train.SaveOptions{TokenizerDir: tok}); err != nil {
		t.Fatal(err)
	}
	return base
}

// mustRun runs a pltune command and fails the test on a non-zero exit.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runTrainCLI(t, args...)
	if code != 0 {
		t.Fatalf("pltune %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

var cachedRe = regexp.MustCompile(`(\d+) requests, (\d+) answers from the cache`)

// evalCounts reads "N requests, M answers from the cache" from eval's
// summary.
func evalCounts(t *testing.T, stdout string) (asked, cached string) {
	t.Helper()
	m := cachedRe.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no request counts in eval's output:\n%s", stdout)
	}
	return m[1], m[2]
}

// scores is a run's results without what differs between two models of
// equal outputs (name, times, cache counts).
func scores(t *testing.T, dir string) string {
	t.Helper()
	r, err := eval.ReadResult(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r.Tasks)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestREADMELoRAPipeline runs the README's LoRA pipeline as written, on a
// tiny model made here, in a scratch working directory (the commands' paths
// are the README's): sft with --lora-rank writes an adapter; orpo trains
// that adapter on; eval, export gguf and merge take the adapter folder;
// the merged model scores exactly as the adapter does. Flags that only
// shorten the run (epochs, lengths, --quiet) are added to the README's.
// The eval cache answers the same adapter from the cache and asks a
// retrained one again.
func TestREADMELoRAPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("trains and evaluates a tiny model several times (about a minute)")
	}
	work := t.TempDir()
	base := tinyBaseFolder(t, work)
	pairs := preferenceSubset(t, work, 4)
	t.Chdir(work)
	os.WriteFile("chat.jsonl", []byte(chatFile), 0o644)
	short := []string{"--max-len", "1024", "--batch-size", "2", "--quiet"}
	evalFlags := []string{"--max-tokens", "8", "--no-style", "--quiet"}

	// pltune sft --model DIR --data chat.jsonl --out out/sft --lora-rank 16
	mustRun(t, append([]string{"sft", "--model", base, "--data", "chat.jsonl", "--out", "out/sft", "--lora-rank", "16", "--epochs", "1", "--lr", "1e-3"}, short...)...)
	if _, err := os.Stat("out/sft/final/config.json"); err == nil {
		t.Fatal("sft --lora-rank wrote a full model; want an adapter folder")
	}
	var ac struct {
		Base string `json:"base_model_name_or_path"`
		R    int    `json:"r"`
	}
	b, _ := os.ReadFile("out/sft/final/adapter_config.json")
	if err := json.Unmarshal(b, &ac); err != nil || ac.Base != base || ac.R != 16 {
		t.Fatalf("out/sft/final/adapter_config.json: %s (%v); want r 16 on %s", b, err, base)
	}

	// pltune orpo --model out/sft/final --data pairs.jsonl --out out/orpo --beta 0.1
	orpo := append([]string{"orpo", "--model", "out/sft/final", "--data", pairs, "--out", "out/orpo", "--beta", "0.1", "--max-steps", "2", "--lr", "1e-3"}, short...)
	mustRun(t, orpo...)
	b, _ = os.ReadFile("out/orpo/final/adapter_config.json")
	if err := json.Unmarshal(b, &ac); err != nil || ac.Base != base || ac.R != 16 {
		t.Fatalf("out/orpo/final/adapter_config.json: %s (%v); want the same adapter (r 16) on %s, not one on out/sft/final", b, err, base)
	}

	// pltune eval --task samples --model out/orpo/final --out out/eval
	evalArgs := append([]string{"eval", "--task", "samples", "--model", "out/orpo/final", "--out", "out/eval"}, evalFlags...)
	first := mustRun(t, evalArgs...)
	asked, cached := evalCounts(t, first)
	if cached != "0" || asked == "0" {
		t.Fatalf("first eval: %s asked, %s cached", asked, cached)
	}
	adapterScores := scores(t, "out/eval")

	// pltune export gguf --model out/sft/final --out model.gguf --type q8_0
	out := mustRun(t, "export", "gguf", "--model", "out/sft/final", "--out", "model.gguf", "--type", "q8_0", "--quiet")
	if !strings.Contains(out, "LoRA merged into") {
		t.Errorf("export gguf of the adapter folder did not merge it: %s", out)
	}

	// pltune merge --model out/orpo/final --out out/merged
	mustRun(t, "merge", "--model", "out/orpo/final", "--out", "out/merged")
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join("out/merged", f)); err != nil {
			t.Errorf("out/merged lacks %s", f)
		}
	}
	// pltune eval --task samples --model out/merged --out out/eval-merged
	mustRun(t, append([]string{"eval", "--task", "samples", "--model", "out/merged", "--out", "out/eval-merged"}, evalFlags...)...)
	if got := scores(t, "out/eval-merged"); got != adapterScores {
		t.Errorf("the merged model scores differently from the adapter:\nadapter: %.600s\nmerged:  %.600s", adapterScores, got)
	}

	// The same adapter again: every answer from the cache. Retrained into
	// the same folder: asked again, although the folder is still final/.
	again := mustRun(t, evalArgs...)
	if a, c := evalCounts(t, again); a != "0" || c != asked {
		t.Errorf("same adapter again: %s asked, %s cached; want all %s cached", a, c, asked)
	}
	if err := os.RemoveAll("out/orpo"); err != nil {
		t.Fatal(err)
	}
	mustRun(t, append(orpo, "--seed", "7", "--lr", "5e-3")...)
	retrained := mustRun(t, evalArgs...)
	if a, c := evalCounts(t, retrained); c != "0" || a != asked {
		t.Errorf("retrained adapter: %s asked, %s cached; want none from the older model's cache", a, c)
	}
}

// TestDPOContinuesAdapter: dpo on an adapter folder trains that adapter on
// (same rank, same base) against the model as loaded: the first step's
// loss is ln 2, as policy and reference agree.
func TestDPOContinuesAdapter(t *testing.T) {
	work := t.TempDir()
	base := tinyBaseFolder(t, work)
	chat := filepath.Join(work, "chat.jsonl")
	os.WriteFile(chat, []byte(chatFile), 0o644)
	sft := filepath.Join(work, "sft")
	// No dropout in the adapter, so that policy and reference agree
	// exactly at the first step.
	mustRun(t, "sft", "--model", base, "--data", chat, "--out", sft, "--lora-rank", "4", "--lora-dropout", "0", "--max-steps", "2", "--lr", "5e-3", "--quiet", "--max-len", "256")
	out := filepath.Join(work, "dpo")
	pairs := preferenceSubset(t, work, 4)
	mustRun(t, "dpo", "--model", filepath.Join(sft, "final"), "--data", pairs, "--out", out,
		"--max-steps", "2", "--batch-size", "2", "--lr", "1e-3", "--max-len", "1024", "--quiet")
	recs := metricsLines(t, filepath.Join(out, "metrics.jsonl"))
	if len(recs) != 2 || recs[0]["loss"] < 0.6931 || recs[0]["loss"] > 0.6932 {
		t.Errorf("metrics %v; want 2 steps, the first at loss ln 2", recs)
	}
	var ac struct {
		Base string `json:"base_model_name_or_path"`
		R    int    `json:"r"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "final", "adapter_config.json"))
	if err := json.Unmarshal(b, &ac); err != nil || ac.Base != base || ac.R != 4 {
		t.Errorf("dpo final/adapter_config.json: %s (%v); want r 4 on %s", b, err, base)
	}
	code, _, stderr := runTrainCLI(t, "dpo", "--model", filepath.Join(sft, "final"), "--data", pairs, "--out", out, "--lora-rank", "8", "--max-len", "1024", "--quiet")
	if code != 2 || !strings.Contains(stderr, "adapter of rank 4") {
		t.Errorf("--lora-rank 8 on a rank-4 adapter: exit %d, %s", code, stderr)
	}
}
