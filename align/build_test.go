package align

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/tokenize"
)

// pairBuilder is an SFTBuilder of sequences up to 100 tokens with a small
// tokenizer trained on the questions and answers of the tests.
func pairBuilder(t *testing.T) *tokenize.SFTBuilder {
	t.Helper()
	texts := []string{"Jaka jest stolica Polski?", "Stolicą Polski jest Warszawa.", "Kraków.", "Ile nóg ma kot?", "Cztery."}
	tt, err := tokenize.TrainBPE(context.Background(), slices.Values(texts), tokenize.BPETrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tt.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	b, err := tokenize.NewSFTBuilder(tok, tokenize.SFTOptions{MaxLen: 100})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuildPairs(t *testing.T) {
	b := pairBuilder(t)
	rating := func(v float64) *float64 { return &v }
	mk := func(id, q, c, r string, cr, rr *float64) corpus.PreferencePair {
		return corpus.PreferencePair{ID: id, Prompt: []corpus.Message{{Role: corpus.RoleUser, Content: q}},
			Chosen: []corpus.Message{{Role: corpus.RoleAssistant, Content: c}}, Rejected: []corpus.Message{{Role: corpus.RoleAssistant, Content: r}},
			ChosenRating: cr, RejectedRating: rr}
	}
	in := []corpus.PreferencePair{
		mk("a", "Jaka jest stolica Polski?", "Warszawa.", "Kraków.", nil, nil),
		mk("b", "Ile nóg ma kot?", "Cztery.", "Trzy.", rating(5), rating(4.5)),
		mk("c", "Ile nóg ma kot?", strings.Repeat("Cztery. ", 30), "Trzy.", nil, nil),
		mk("d", "Ile nóg ma kot?", "Cztery.", "Pięć.", rating(5), rating(1)),
	}
	got, st, err := BuildPairs(context.Background(), b, func(yield func(corpus.PreferencePair, error) bool) {
		for _, p := range in {
			if !yield(p, nil) {
				return
			}
		}
	}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := (BuildStats{Read: 4, BelowMargin: 1, TooLong: 1}); st != want || st.Kept() != 2 || len(got) != 2 {
		t.Fatalf("stats %+v (kept %d, built %d); want %+v, 2 built", st, st.Kept(), len(got), want)
	}
	if err := CheckPairs(got); err != nil {
		t.Fatal(err)
	}
}
