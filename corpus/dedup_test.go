package corpus

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"testing"
)

func seqOf(samples []Sample) iter.Seq2[Sample, error] {
	return func(yield func(Sample, error) bool) {
		for _, s := range samples {
			if !yield(s, nil) {
				return
			}
		}
	}
}

func qa(id, q, a string) Sample {
	return Sample{ID: id, Messages: []Message{{RoleUser, q}, {RoleAssistant, a}}}
}

func TestNormalizeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  Zażółć\tGĘŚLĄ \n jaźń ", "zażółć gęślą jaźń"},
		{"Zo\u0301łw", "zółw"}, // o + combining acute composes to ó
		{"łaska", "łaska"},
		{"", ""},
		{"\u00a0A\u2003B", "a b"},
	}
	for _, tt := range tests {
		if got := NormalizeText(tt.in); got != tt.want {
			t.Errorf("NormalizeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDedup(t *testing.T) {
	long := "Wisła jest najdłuższą rzeką Polski i płynie przez Kraków, Warszawę, Toruń oraz Gdańsk, a uchodzi do Morza Bałtyckiego w okolicach Gdańska; jej źródła leżą na stokach Baraniej Góry w Beskidzie Śląskim"
	samples := []Sample{
		qa("a", "Opisz Wisłę.", long),
		qa("b", "opisz   WISŁĘ.", long),                                          // exact after normalisation
		qa("c", "Opisz Wisłę.", strings.Replace(long, "Śląskim", "Śląskiem", 1)), // near: one shingle of 40 differs
		qa("d", "Podaj stolicę Polski.", "Warszawa."),
		qa("e", "Podaj stolicę Niemiec.", "Berlin."),
		qa("f", "Opisz Wisłę.", "Wisła to rzeka."),
		// Near: a system prompt adds 5 shingles to 41.
		{ID: "g", System: "Jesteś geografem.", Messages: samples0(long)},
	}
	res, err := Dedup(context.Background(), seqOf(samples), DefaultDedupOptions())
	if err != nil {
		t.Fatal(err)
	}
	wantKeep := []bool{true, false, false, true, true, true, false}
	for i, k := range res.Keep {
		if k != wantKeep[i] {
			t.Errorf("sample %s kept %v, want %v", samples[i].ID, k, wantKeep[i])
		}
	}
	if res.Total != 7 || res.Kept != 4 || res.ExactDuplicates != 1 || res.NearDuplicates != 2 || len(res.Clusters) != 1 {
		t.Fatalf("result %+v", res)
	}
	c := res.Clusters[0]
	if c.Kept != "a" || len(c.Duplicates) != 3 || !c.Duplicates[0].Exact || c.Duplicates[1].Exact ||
		c.Duplicates[1].Similarity < 0.8 || c.Duplicates[1].Similarity == 1 {
		t.Errorf("cluster %+v", c)
	}

	exactOnly := DefaultDedupOptions()
	exactOnly.Threshold = 0
	res, err = Dedup(context.Background(), seqOf(samples), exactOnly)
	if err != nil || res.Kept != 6 || res.NearDuplicates != 0 || res.ExactDuplicates != 1 {
		t.Errorf("exact only: %+v, %v", res, err)
	}
}

func samples0(long string) []Message {
	return []Message{{RoleUser, "Opisz Wisłę."}, {RoleAssistant, long}}
}

// TestDedupRecall measures the LSH against pairs of known similarity: pairs
// well above the threshold are found, pairs well below are not.
func TestDedupRecall(t *testing.T) {
	var samples []Sample
	words := func(seed, n int) []string {
		w := make([]string, n)
		for i := range w {
			w[i] = fmt.Sprintf("słowo%d", (seed*7919+i*104729)%1000003)
		}
		return w
	}
	const pairs = 200
	for p := range pairs {
		base := words(p, 100)
		edited := append([]string(nil), base...)
		// One changed word in 100 changes 5 of 96 shingles: Jaccard ≈ 0.90.
		edited[50] = "zmiana"
		far := append([]string(nil), base...)
		// Every 4th word changed: no 5-word shingle survives intact.
		for i := 0; i < len(far); i += 4 {
			far[i] = fmt.Sprintf("inne%d", i)
		}
		samples = append(samples,
			qa(fmt.Sprintf("p%d", p), "x", strings.Join(base, " ")),
			qa(fmt.Sprintf("p%d-near", p), "x", strings.Join(edited, " ")),
			qa(fmt.Sprintf("p%d-far", p), "x", strings.Join(far, " ")))
	}
	res, err := Dedup(context.Background(), seqOf(samples), DefaultDedupOptions())
	if err != nil {
		t.Fatal(err)
	}
	found, falsePos := 0, 0
	for p := range pairs {
		if !res.Keep[3*p+1] {
			found++
		}
		if !res.Keep[3*p+2] {
			falsePos++
		}
	}
	if found < pairs*95/100 || falsePos > 0 {
		t.Errorf("near pairs found %d/%d, far pairs merged %d", found, pairs, falsePos)
	}
}
