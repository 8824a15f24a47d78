//go:build pltune_torch

package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMergeCommand: pltune merge with a tiny --max-shard-size writes
// several shards with their index, and the merged folder scores texts as
// the adapter folder does (score takes either).
func TestMergeCommand(t *testing.T) {
	work := t.TempDir()
	base := tinyBaseFolder(t, work)
	chat := filepath.Join(work, "chat.jsonl")
	os.WriteFile(chat, []byte(chatFile), 0o644)
	sft := filepath.Join(work, "sft")
	mustRun(t, "sft", "--model", base, "--data", chat, "--out", sft, "--lora-rank", "4", "--max-steps", "2", "--lr", "1e-2", "--quiet", "--max-len", "256")
	adapter, merged := filepath.Join(sft, "final"), filepath.Join(work, "merged")
	out := mustRun(t, "merge", "--model", adapter, "--out", merged, "--max-shard-size", "40kB")
	if !strings.Contains(out, "merged "+adapter+" into "+base) {
		t.Errorf("merge output: %s", out)
	}
	shards, _ := filepath.Glob(filepath.Join(merged, "model-*-of-*.safetensors"))
	var idx struct {
		Metadata  map[string]float64 `json:"metadata"`
		WeightMap map[string]string  `json:"weight_map"`
	}
	b, err := os.ReadFile(filepath.Join(merged, "model.safetensors.index.json"))
	if err == nil {
		err = json.Unmarshal(b, &idx)
	}
	if err != nil || len(shards) < 2 || idx.Metadata["total_size"] <= 0 || len(idx.WeightMap) == 0 {
		t.Fatalf("%d shards, index %s (%v); want several shards and an index", len(shards), b, err)
	}
	if _, err := os.Stat(filepath.Join(merged, "model.safetensors")); err == nil {
		t.Error("a single model.safetensors beside the shards")
	}

	texts := `"Stolicą Polski jest Warszawa."` + "\n" + `"Ala ma kota."` + "\n"
	score := func(model string) []float64 {
		t.Helper()
		code, stdout, stderr := runCLIInput(t, texts, "score", "--model", model)
		if code != 0 {
			t.Fatalf("score %s: exit %d: %s", model, code, stderr)
		}
		var lps []float64
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			var r struct {
				LogProb float64 `json:"logprob"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			lps = append(lps, r.LogProb)
		}
		return lps
	}
	a, m, plain := score(adapter), score(merged), score(base)
	for i := range a {
		if math.Abs(a[i]-m[i]) > 1e-4*math.Abs(a[i]) {
			t.Errorf("text %d: adapter %.6f, merged %.6f", i, a[i], m[i])
		}
		if a[i] == plain[i] {
			t.Errorf("text %d: the adapter scores as the base (%.6f): no adapter applied?", i, a[i])
		}
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"merge", "--model", adapter}, "--out DIR are required"},
		{[]string{"merge", "--model", base, "--out", filepath.Join(work, "x")}, "full model folder"},
		{[]string{"merge", "--model", adapter, "--out", filepath.Join(work, "x"), "--max-shard-size", "5XB"}, "--max-shard-size"},
		{[]string{"merge", "--model", adapter, "--out", adapter}, "must not be the adapter folder"},
	} {
		code, _, stderr := runTrainCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
}
