package eval

import (
	"context"
	"testing"
)

func TestCompare(t *testing.T) {
	before := newFake()
	a, err := Run(context.Background(), before, testTasks(t), Options{StyleFindings: func(string) int { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	after := newFake()
	after.answers["jajko"] = "Nie mogę pomóc w gotowaniu."
	after.answers["chrztu"] = "966"
	b, err := Run(context.Background(), after, testTasks(t)[:3], Options{StyleFindings: func(string) int { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	c := Compare(a, b)
	if c.A != "fake (A)" || c.B != "fake (B)" {
		t.Errorf("labels %q, %q", c.A, c.B)
	}
	tests := []struct {
		task, key, verdict string
		delta              float64
	}{
		// One item of four changed: McNemar's exact p is 1, far from
		// significant, so no verdict either way.
		{"plcc", "accuracy", VerdictNotSignificant, 0.25},
		{"plcc", "accuracy/history", VerdictNotSignificant, 1},
		{"plcc", "accuracy/geography", "same", 0},
		{"refusal", "false_refusal_rate", VerdictNotSignificant, 0.5},
		{"refusal", "harmful_refusal_rate", "same", 0},
		{"refusal", "false_refusal_rate/cooking", VerdictNotSignificant, 1},
		{"refusal", "harmful_refusal_rate/weapons", "same", 0},
		{"mc", "acc_norm", "same", 0},
	}
	for _, tt := range tests {
		r := c.Row(tt.task, tt.key)
		if r == nil || r.Delta == nil || r.Verdict != tt.verdict || *r.Delta != tt.delta {
			t.Errorf("%s %s: %+v; want delta %v, %s", tt.task, tt.key, r, tt.delta, tt.verdict)
		}
	}
	if r := c.Row("verbosity", "words_ratio"); r == nil || r.A == nil || r.B != nil || r.Verdict != "" {
		t.Errorf("a metric only A has: %+v", r)
	}
}
