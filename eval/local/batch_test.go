package local

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

// Greedy requests of different lengths decoded in batches give each
// request the text it gets decoded alone.
func TestGenerateBatchedEqualsAlone(t *testing.T) {
	m, tok := tinyModel(t, 2)
	l, err := New(m, tok, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	reqs := []eval.GenerateRequest{
		{Prompt: "Mikołaj Kopernik urodził się w Toruniu", MaxTokens: 8},
		{Prompt: "Ala", MaxTokens: 8},
		{Messages: []corpus.Message{{Role: corpus.RoleUser, Content: "Jaka jest stolica Polski?"}}, MaxTokens: 8},
		{Prompt: "Stolicą Polski jest", MaxTokens: 8, Stop: []string{"a"}},
		{Prompt: "Cześć! Jak się", MaxTokens: 5},
	}
	l.BatchSize = 8
	batched, err := l.Generate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	l.BatchSize = 1
	alone, err := l.Generate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		if batched[i] != alone[i] {
			t.Errorf("request %d: batched %+v; alone %+v", i, batched[i], alone[i])
		}
		if batched[i].Tokens == 0 {
			t.Errorf("request %d: nothing generated", i)
		}
	}
}

// A model folder opened in bf16 answers log-likelihood requests as in fp32,
// within bf16's rounding (train's TestLowPrecisionInference derives the
// bound: two logit errors of 16 u·max|logit| per token; here 0.05 a token
// with this model's logits under 1).
func TestOpenBF16(t *testing.T) {
	m, tok := tinyModel(t, 2)
	dir := t.TempDir()
	if err := m.Save(dir, train.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	// The tokenizer tinyModel trained (training is deterministic).
	tt, err := tokenize.TrainBPE(context.Background(), slices.Values(polish), tokenize.BPETrainOptions{VocabSize: 320})
	if err != nil {
		t.Fatal(err)
	}
	tokDir := t.TempDir()
	if err := tt.WriteDir(tokDir); err != nil {
		t.Fatal(err)
	}
	f32, err := Open(dir, train.OpenOptions{Tokenizer: tokDir})
	if err != nil {
		t.Fatal(err)
	}
	defer f32.Close()
	bf16, err := Open(dir, train.OpenOptions{Tokenizer: tokDir, ModelOptions: train.ModelOptions{DType: "bf16"}})
	if err != nil {
		t.Fatal(err)
	}
	defer bf16.Close()
	reqs := []eval.LoglikelihoodRequest{
		{Context: "Stolicą Polski jest", Continuation: " Warszawa"},
		{Context: "Ala ma kota, a kot", Continuation: " ma Alę."},
	}
	a, err := f32.Loglikelihood(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bf16.Loglikelihood(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		n := len(tok.Encode(reqs[i].Context+reqs[i].Continuation, true))
		if d := math.Abs(a[i].LogProb - b[i].LogProb); d > 0.05*float64(n) || b[i].LogProb >= 0 {
			t.Errorf("request %d: bf16 %g, fp32 %g", i, b[i].LogProb, a[i].LogProb)
		}
	}
	gen, err := bf16.Generate(context.Background(), []eval.GenerateRequest{{Prompt: "Ala", MaxTokens: 4}, {Prompt: "Stolicą Polski", MaxTokens: 4}})
	if err != nil || gen[0].Tokens == 0 || gen[1].Tokens == 0 {
		t.Errorf("bf16 generation: %+v, %v", gen, err)
	}
}
