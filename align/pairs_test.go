package align

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/corpus"
)

func ptr[T any](v T) *T { return &v }

func answers(scores ...any) *Ranked {
	r := &Ranked{ID: "q", Prompt: []corpus.Message{{Role: corpus.RoleUser, Content: "Ile to 2+2?"}}}
	for i, s := range scores {
		resp := Response{Messages: []corpus.Message{{Role: corpus.RoleAssistant, Content: fmt.Sprintf("odpowiedź %d", i)}}}
		switch v := s.(type) {
		case int:
			resp.Rank = ptr(v)
		case float64:
			resp.Rating = ptr(v)
		}
		r.Responses = append(r.Responses, resp)
	}
	return r
}

func pairIDs(ps []corpus.PreferencePair) []string {
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestPairsFromRanking(t *testing.T) {
	tests := []struct {
		name string
		r    *Ranked
		want []string
	}{
		{"three distinct", answers(2, 1, 3), []string{"q:0>2", "q:1>0", "q:1>2"}},
		{"ties make no pair", answers(1, 2, 2), []string{"q:0>1", "q:0>2"}},
		{"all tied", answers(1, 1), nil},
	}
	for _, tt := range tests {
		got, err := PairsFromRanking(tt.r)
		if err != nil {
			t.Fatal(err)
		}
		if ids := pairIDs(got); !slices.Equal(ids, tt.want) {
			t.Errorf("%s: pairs %v, want %v", tt.name, ids, tt.want)
		}
		for _, p := range got {
			if p.Chosen[0].Content == p.Rejected[0].Content || len(p.Prompt) != 1 {
				t.Errorf("%s: bad pair %+v", tt.name, p)
			}
		}
	}
	if _, err := PairsFromRanking(answers(1, 2.5)); err == nil {
		t.Error("a response without rank was accepted")
	}
}

func TestPairsFromRatings(t *testing.T) {
	tests := []struct {
		name   string
		r      *Ranked
		margin float64
		want   []string
	}{
		{"every difference", answers(5.0, 3.0, 4.0), 0, []string{"q:0>1", "q:0>2", "q:2>1"}},
		{"margin 2", answers(5.0, 3.0, 4.0), 2, []string{"q:0>1"}},
		{"equal ratings", answers(4.0, 4.0), 0, nil},
	}
	for _, tt := range tests {
		got, err := PairsFromRatings(tt.r, tt.margin)
		if err != nil {
			t.Fatal(err)
		}
		if ids := pairIDs(got); !slices.Equal(ids, tt.want) {
			t.Errorf("%s: pairs %v, want %v", tt.name, ids, tt.want)
		}
		for _, p := range got {
			if *p.ChosenRating-*p.RejectedRating < tt.margin || *p.ChosenRating <= *p.RejectedRating {
				t.Errorf("%s: pair %s rated %v vs %v", tt.name, p.ID, *p.ChosenRating, *p.RejectedRating)
			}
		}
	}
	if _, err := PairsFromRatings(answers(5.0, 3.0), -1); err == nil {
		t.Error("a negative margin was accepted")
	}
}

func TestKeepByMargin(t *testing.T) {
	for _, tt := range []struct {
		c, r *float64
		want bool
	}{{ptr(5.0), ptr(1.0), true}, {ptr(3.0), ptr(2.0), false}, {nil, ptr(2.0), true}} {
		p := corpus.PreferencePair{ChosenRating: tt.c, RejectedRating: tt.r}
		if got := KeepByMargin(&p, 2); got != tt.want {
			t.Errorf("ratings %v/%v: KeepByMargin = %v", tt.c, tt.r, got)
		}
	}
}

func TestParseRanked(t *testing.T) {
	const good = `{"id":"a","prompt":"Stolica Polski?","responses":[{"content":"Warszawa.","rank":1},{"content":"Kraków.","rank":2}]}

{"prompt":[{"role":"system","content":"Krótko."},{"role":"user","content":"2+2?"}],"responses":[{"messages":[{"role":"assistant","content":"4"}],"rating":5},{"content":"5","rating":1.5}]}
`
	var recs []Ranked
	for r, err := range ParseRanked(context.Background(), strings.NewReader(good), "r.jsonl") {
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 2 || recs[0].ID != "a" || recs[1].ID != "r.jsonl:3" || len(recs[1].Prompt) != 2 {
		t.Fatalf("records %+v", recs)
	}
	if ps, err := recs[1].Pairs(1); err != nil || len(ps) != 1 || ps[0].Chosen[0].Content != "4" {
		t.Fatalf("rated record → %+v, %v", ps, err)
	}
	bad := []struct{ line, want string }{
		{`{"prompt":"x","responses":[{"content":"a","rank":1}]}`, "1 responses"},
		{`{"prompt":"x","responses":[{"content":"a","rank":1},{"content":"b","rating":2}]}`, "same one"},
		{`{"prompt":"x","responses":[{"content":"a","rank":1},{"rank":2}]}`, `response 2 has neither`},
		{`{"responses":[{"content":"a","rank":1},{"content":"b","rank":2}]}`, `no "prompt"`},
		{`{"prompt":7,"responses":[]}`, "prompt"},
		{`{"prompt":"x",`, "unexpected end"},
	}
	for _, b := range bad {
		var err error
		for _, e := range ParseRanked(context.Background(), strings.NewReader("\n"+b.line), "r.jsonl") {
			err = e
		}
		if err == nil || !errors.Is(err, ErrRanked) || !strings.Contains(err.Error(), b.want) || !strings.Contains(err.Error(), "r.jsonl: line 2") {
			t.Errorf("%s: error %v; want ErrRanked at line 2 with %q", b.line, err, b.want)
		}
	}
}

func FuzzParseRanked(f *testing.F) {
	f.Add(`{"id":"a","prompt":"P?","responses":[{"content":"A","rank":1},{"content":"B","rank":2}]}`)
	f.Add(`{"prompt":[{"role":"user","content":"x"}],"responses":[{"content":"A","rating":1},{"content":"B","rating":1e308}]}`)
	f.Add("\n\n{}\n")
	f.Fuzz(func(t *testing.T, s string) {
		for r, err := range ParseRanked(context.Background(), strings.NewReader(s), "f") {
			if err != nil {
				return
			}
			ps, err := r.Pairs(0.5)
			if err != nil {
				continue
			}
			for _, p := range ps {
				if corpus.ValidatePair(&p, corpus.Limits{}) != nil {
					t.Fatalf("invalid pair %+v", p)
				}
			}
		}
	})
}
