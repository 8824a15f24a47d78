//go:build pltune_torch

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

// tinyModel trains a small byte-level BPE tokenizer and saves a random
// Llama with its vocabulary next to it.
func tinyModel(t *testing.T) (modelDir, tokDir string, m *train.Model, tok *tokenize.Tokenizer) {
	t.Helper()
	dir := t.TempDir()
	texts := []string{"Warszawa to stolica Polski.", "Wisła płynie przez Kraków i Warszawę.", "Ala ma kota, a kot ma Alę."}
	trained, err := tokenize.TrainBPE(context.Background(), slices.Values(texts), tokenize.BPETrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	tokDir = filepath.Join(dir, "tok")
	if err := trained.WriteDir(tokDir); err != nil {
		t.Fatal(err)
	}
	tok, err = tokenize.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := train.ParseConfig([]byte(fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"vocab_size":%d,"hidden_size":16,
		"intermediate_size":32,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1}`, tok.VocabSize())))
	if err != nil {
		t.Fatal(err)
	}
	m, err = train.NewModel(cfg, train.ModelOptions{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Drop)
	modelDir = filepath.Join(dir, "model")
	if err := m.Save(modelDir, train.SaveOptions{TokenizerDir: tokDir, EOSTokenIDs: tok.StopIDs()}); err != nil {
		t.Fatal(err)
	}
	return modelDir, tokDir, m, tok
}

func TestScoreCommand(t *testing.T) {
	modelDir, tokDir, m, tok := tinyModel(t)
	texts := []string{"Ala ma kota.", "", "Warszawa", "Kraków i Wisła, Polska. Ala ma kota, a kot ma Alę.", "x", "a", "b", "c", "d", "e"}
	var in strings.Builder
	for _, s := range texts {
		b, _ := json.Marshal(s)
		in.Write(append(b, '\n'))
	}
	code, out, errOut := runCLIInput(t, in.String(), "score", "--model", modelDir, "--tokenizer", tokDir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%d output lines for %d inputs:\n%s", len(lines), len(texts), out)
	}
	for i, s := range texts {
		var got struct {
			LogProb *float64 `json:"logprob"`
			Tokens  int      `json:"tokens"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil || got.LogProb == nil {
			t.Fatalf("line %d: %q: %v", i, lines[i], err)
		}
		ids := tok.Encode(s, true)
		if got.Tokens != len(ids) {
			t.Errorf("%q: tokens %d; want %d", s, got.Tokens, len(ids))
		}
		want, err := m.Score(context.Background(), [][]int{ids})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(*got.LogProb-want[0]) > 1e-4 || len(ids) > 1 && *got.LogProb >= 0 {
			t.Errorf("%q: logprob %g; model says %g", s, *got.LogProb, want[0])
		}
	}
}

func TestGenerateCommand(t *testing.T) {
	modelDir, tokDir, m, tok := tinyModel(t)
	in := `"Ala ma"` + "\n" + `"Warszawa to"` + "\n"
	code, out, errOut := runCLIInput(t, in, "generate", "--model", modelDir, "--tokenizer", tokDir, "--max-new-tokens", "5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("output %q", out)
	}
	stop := append(m.StopIDs(), tok.StopIDs()...)
	for i, p := range []string{"Ala ma", "Warszawa to"} {
		var got string
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %d %q: %v", i, lines[i], err)
		}
		ids, err := m.Generate(context.Background(), [][]int{tok.Encode(p, true)}, train.GenerateOptions{MaxNewTokens: 5, StopIDs: stop})
		if err != nil {
			t.Fatal(err)
		}
		if want := tok.Decode(ids[0], true); got != want {
			t.Errorf("%q: generated %q; greedy decoding gives %q", p, got, want)
		}
	}
	sample := func(seed string) string {
		_, o, e := runCLIInput(t, in, "generate", "--model", modelDir, "--tokenizer", tokDir, "--max-new-tokens", "6", "--temperature", "2", "--seed", seed)
		if e != "" {
			t.Fatal(e)
		}
		return o
	}
	if a, b := sample("1"), sample("1"); a != b {
		t.Errorf("same seed, different output: %q vs %q", a, b)
	}
	if a, b := sample("1"), sample("2"); a == b {
		t.Errorf("seeds 1 and 2 gave the same samples %q", a)
	}
}

func TestModelCommandUsage(t *testing.T) {
	modelDir, tokDir, _, _ := tinyModel(t)
	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"score help", "", []string{"score", "--help"}, 0, ""},
		{"generate help", "", []string{"generate", "--help"}, 0, ""},
		{"score no model", "", []string{"score", "--tokenizer", tokDir}, 2, "needs --model"},
		{"generate no model", "", []string{"generate", "--tokenizer", tokDir}, 2, "needs --model"},
		{"bad device", "", []string{"score", "--model", modelDir, "--device", "tpu"}, 2, `--device: train: device "tpu"`},
		{"bad dtype", "", []string{"generate", "--model", modelDir, "--dtype", "int8"}, 2, `--dtype: train: dtype "int8"`},
		{"base of a full model", "", []string{"score", "--model", modelDir, "--base", modelDir}, 1, "full model folder"},
		{"wrong flag", "", []string{"score", "--modle", modelDir}, 2, "modle"},
		{"bad temperature", "", []string{"generate", "--model", modelDir, "--tokenizer", tokDir, "--temperature", "-1"}, 2, "temperature"},
		{"not a JSON string", "\"ok\"\n{\"text\": 1}\n", []string{"score", "--model", modelDir, "--tokenizer", tokDir}, 1, "line 2: want a JSON string"},
		{"missing model", "", []string{"score", "--model", filepath.Join(modelDir, "none"), "--tokenizer", tokDir}, 1, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLIInput(t, tt.stdin, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d with %q", code, errOut, tt.code, tt.want)
			}
			if tt.code == 2 && strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
				t.Errorf("usage error is not one line: %q", errOut)
			}
			if tt.code == 0 && !strings.Contains(out, "usage: pltune") {
				t.Errorf("help: %q", out)
			}
		})
	}
}
