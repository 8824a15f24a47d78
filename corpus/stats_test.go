package corpus

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

type runeCounter struct{}

func (runeCounter) CountTokens(s string) int { return len(strings.Fields(s)) }

func TestStatsPLLuMIC(t *testing.T) {
	st, err := ComputeStats(context.Background(), ReadSamples(context.Background(), "testdata/pllumic.json", Options{Origin: OriginOrganic}), runeCounter{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Samples != 4 || len(st.ByOrigin) != 1 || st.ByOrigin[0] != (Count{"organic", 4, 100}) {
		t.Errorf("by origin %+v", st.ByOrigin)
	}
	if len(st.ByType) != 4 || st.ByTurns[0] != (Count{"1", 2, 50}) || st.ByTurns[1] != (Count{"2", 2, 50}) {
		t.Errorf("types %+v turns %+v", st.ByType, st.ByTurns)
	}
	if st.BySource[0] != (Count{"(none)", 2, 50}) || st.Tokens == nil || st.Tokens.Total == 0 {
		t.Errorf("sources %+v tokens %+v", st.BySource, st.Tokens)
	}
}

func TestStatsMarkdown(t *testing.T) {
	b := NewStatsBuilder(nil)
	add := func(o Origin, typ string, n int) {
		for range n {
			b.Add(&Sample{Origin: o, Type: typ, Sources: []string{"src"}, Messages: []Message{{RoleUser, "ąę"}, {RoleAssistant, "óśćź"}}})
		}
	}
	add(OriginSynthetic, "Dialog", 1)
	add(OriginOrganic, "Dialog", 2)
	add(OriginConverted, "NER", 1)
	var md strings.Builder
	st := b.Stats()
	if err := st.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| Origin | Samples | % |\n|---|---:|---:|\n| organic | 2 | 50.00 |\n| converted | 1 | 25.00 |\n| synthetic | 1 | 25.00 |\n| **Total** | **4** | **100.00** |",
		"| Type | Samples | % | organic | converted | synthetic |",
		"| Dialog | 3 | 75.00 | 2 | 0 | 1 |",
		"| NER | 1 | 25.00 | 0 | 1 | 0 |",
		"| characters | 24 | 6.0 | 6 | 6 | 6 |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	if st.Chars.Total != int64(4*utf8.RuneCountInString("ąęóśćź")) {
		t.Errorf("chars %+v", st.Chars)
	}
	if got := group(1234567); got != "1,234,567" {
		t.Errorf("group = %s", got)
	}
}

func TestPairStats(t *testing.T) {
	ctx := context.Background()
	st, err := ComputePairStats(ctx, ReadPairs(ctx, "testdata/preference.jsonl", Options{}))
	if err != nil {
		t.Fatal(err)
	}
	// Pair 1: chosen "…, mimo że…" and rejected "… mimo, że…" have equal
	// length; pair 2 likewise: chosen is longer in neither.
	if st.Pairs != 2 || st.WithSystem != 1 || st.MultiTurnPrompts != 0 || st.ChosenLonger != 0 ||
		len(st.Ratings) != 1 || st.Ratings[0] != (Count{"5/2", 1, 50}) {
		t.Errorf("stats %+v", st)
	}
	var md strings.Builder
	st.WriteMarkdown(&md)
	if !strings.Contains(md.String(), "| 2 | 0 | 1 | 0.00% |") || !strings.Contains(md.String(), "| 5/2 | 1 | 50.00 |") {
		t.Errorf("markdown:\n%s", md.String())
	}
	tr, err := ComputePairStats(ctx, ReadPairs(ctx, "testdata/triples.jsonl", Options{}))
	if err != nil || tr.ChosenLonger != 50 || tr.Ratings != nil {
		t.Errorf("triples %+v, %v", tr, err)
	}
}
