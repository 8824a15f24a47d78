package tokenize

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// CountTokens must agree with HF's ids (without special tokens) on every
// golden string of the reference tokenizers, and count without the id
// slice Encode returns.
func TestCountTokensMatchesHF(t *testing.T) {
	for _, name := range referenceTokenizers {
		t.Run(name, func(t *testing.T) {
			tk := testTokenizer(t, name)
			for _, g := range readGoldens(t, name) {
				if got := tk.CountTokens(g.S); got != len(g.IDs) {
					t.Fatalf("line %d: CountTokens(%q) = %d, HF has %d ids", g.line, g.S, got, len(g.IDs))
				}
			}
		})
	}
}

func TestCountTokensAllocatesLess(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers at random")
	}
	tk := testTokenizer(t, "llama3_1")
	text := "Litwo! Ojczyzno moja! ty jesteś jak zdrowie. Ile cię trzeba cenić, ten tylko się dowie, kto cię stracił."
	tk.CountTokens(text) // fills the pooled buffer
	count := testing.AllocsPerRun(100, func() { tk.CountTokens(text) })
	enc := testing.AllocsPerRun(100, func() { tk.Encode(text, false) })
	if count >= enc {
		t.Errorf("CountTokens makes %.0f allocations a call, Encode %.0f: counting should not allocate the id slice", count, enc)
	}
}

// A trained tokenizer needs no reference files: the count equals Encode's
// on texts with and without added tokens.
func TestCountTokensTrained(t *testing.T) {
	tr, err := TrainBPE(context.Background(), slices.Values([]string{strings.Repeat("Zażółć gęślą jaźń, ala ma kota. ", 40)}), BPETrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := tr.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	tk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "Zażółć gęślą jaźń.", TrainedBOS + "tak" + TrainedEOS, "  \n\t  "} {
		if got, want := tk.CountTokens(s), len(tk.Encode(s, false)); got != want {
			t.Errorf("CountTokens(%q) = %d, Encode has %d ids", s, got, want)
		}
	}
}

func BenchmarkCountTokens(b *testing.B) {
	tk := testTokenizer(b, "llama3_1")
	texts := benchCorpus(b, "llama3_1")
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range texts {
			tk.CountTokens(s)
		}
	}
}
