package eval

import (
	"fmt"
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// Known answers: numpy/scipy/scikit-learn give the same numbers for these
// inputs (worked out by hand in the comments).
func TestMeanStderr(t *testing.T) {
	// mean 0.75, sample variance 0.75/3 = 0.25, std 0.5, / √4 = 0.25.
	if got := MeanStderr([]float64{1, 0, 1, 1}); !near(got, 0.25, 1e-15) {
		t.Errorf("MeanStderr = %v; want 0.25", got)
	}
	if got := MeanStderr([]float64{1}); got != 0 {
		t.Errorf("one value: %v; want 0", got)
	}
	// acc 0.6 on 10 items: sqrt(0.6·0.4/9) = 0.1633.
	xs := []float64{1, 1, 1, 1, 1, 1, 0, 0, 0, 0}
	if got := MeanStderr(xs); !near(got, math.Sqrt(0.24/9), 1e-15) {
		t.Errorf("MeanStderr = %v", got)
	}
}

func TestMcNemar(t *testing.T) {
	tests := []struct {
		b, c   int
		p      float64
		method string
	}{
		// Exact: 2·P[X ≤ 1], X ~ Bin(10, ½) = 2·11/1024.
		{1, 9, 22.0 / 1024, "mcnemar-exact"},
		{9, 1, 22.0 / 1024, "mcnemar-exact"},
		{0, 3, 0.25, "mcnemar-exact"},
		{3, 3, 1, "mcnemar-exact"},
		{0, 0, 1, "mcnemar-exact"},
		// χ² with continuity correction: (|10−25|−1)²/35 = 5.6, sf = 0.0179605.
		{10, 25, 0.017960477526078766, "mcnemar-chi2"},
	}
	for _, tt := range tests {
		p, m := McNemar(tt.b, tt.c)
		if !near(p, tt.p, 1e-12) || m != tt.method {
			t.Errorf("McNemar(%d, %d) = %v, %s; want %v, %s", tt.b, tt.c, p, m, tt.p, tt.method)
		}
	}
}

func TestF1(t *testing.T) {
	gold := []int{1, 1, 0, 0, 1}
	pred := []int{1, 0, 0, 1, 1}
	// Class 1: tp 2, fp 1, fn 1 → 4/6. Class 0: tp 1, fp 1, fn 1 → 0.5.
	if got := F1(gold, pred); !near(got, 4.0/6, 1e-15) {
		t.Errorf("F1 = %v", got)
	}
	if got := MacroF1(gold, pred); !near(got, (0.5+4.0/6)/2, 1e-15) {
		t.Errorf("MacroF1 = %v", got)
	}
	// A class only predicted still counts in the macro mean (scikit-learn's
	// labels are the union of y_true and y_pred): classes 0, 1, 2 with F1
	// 2/3, 1, 0.
	if got := MacroF1([]int{0, 0, 1}, []int{0, 2, 1}); !near(got, (2.0/3+1+0)/3, 1e-15) {
		t.Errorf("MacroF1 with a predicted-only class = %v", got)
	}
	if F1([]int{0, 0}, []int{0, 0}) != 0 {
		t.Error("F1 without positives should be 0")
	}
}

func TestBootstrapStderrOfMean(t *testing.T) {
	// For a mean the bootstrap standard error approaches the population
	// standard deviation over √n: 0.5/√100 = 0.05 here.
	xs := make([]float64, 100)
	for i := range 50 {
		xs[i] = 1
	}
	se := BootstrapStderr(len(xs), 2000, func(idx []int) float64 {
		s := 0.0
		for _, i := range idx {
			s += xs[i]
		}
		return s / float64(len(idx))
	})
	if !near(se, 0.05, 0.005) {
		t.Errorf("bootstrap stderr %v; want about 0.05", se)
	}
}

func TestPairedBootstrap(t *testing.T) {
	n := 200
	gold := make([]int, n)
	good := make([]int, n)
	bad := make([]int, n)
	for i := range n {
		gold[i] = i % 2
		good[i] = gold[i]
		if i%10 == 0 {
			good[i] = 1 - gold[i]
		}
		bad[i] = gold[i]
		if i%3 == 0 {
			bad[i] = 1 - gold[i]
		}
	}
	stat := func(pred []int) func([]int) float64 {
		return func(idx []int) float64 {
			g, p := make([]int, len(idx)), make([]int, len(idx))
			for k, i := range idx {
				g[k], p[k] = gold[i], pred[i]
			}
			return F1(g, p)
		}
	}
	if p := PairedBootstrap(n, 1000, stat(bad), stat(good)); p >= 0.01 {
		t.Errorf("F1 0.67 vs 0.9 on 200 items: p = %v; want < 0.01", p)
	}
	if p := PairedBootstrap(n, 1000, stat(good), stat(good)); p != 1 {
		t.Errorf("identical runs: p = %v; want 1", p)
	}
}

// mcResult builds a run of n multiple-choice items of which the first
// correct are right.
func mcResult(model string, n int, right func(i int) bool) *Result {
	tr := TaskResult{Name: "llmzszl", Kind: KindMultipleChoice, MC: &MCScore{Acc: &Accuracy{}, AccNorm: &Accuracy{}}}
	for i := range n {
		ok := right(i)
		tr.MC.Acc.add(ok)
		tr.MC.AccNorm.add(ok)
		tr.Items = append(tr.Items, ItemResult{ID: fmt.Sprint(i), Scores: map[string]float64{"acc": b2f(ok), "acc_norm": b2f(ok)}})
	}
	return &Result{Model: model, Tasks: []TaskResult{tr}}
}

func TestCompareSignificance(t *testing.T) {
	// 36 items, B fixes 3 that A got wrong: McNemar exact p = 0.25.
	a := mcResult("a", 36, func(i int) bool { return i >= 10 })
	b := mcResult("b", 36, func(i int) bool { return i >= 7 })
	r := Compare(a, b).Row("llmzszl", "acc")
	if r.Verdict != VerdictNotSignificant || r.Test == nil || r.Test.BWins != 3 || r.Test.AWins != 0 || !near(r.Test.P, 0.25, 1e-12) {
		t.Errorf("3 of 36 better: %+v %+v; want no significant change at p 0.25", r, r.Test)
	}
	// 400 items, B right on 60 more, wrong on 20 A got: χ² p ≈ 1e-5.
	a = mcResult("a", 400, func(i int) bool { return i < 200 })
	b = mcResult("b", 400, func(i int) bool { return (i < 200 && i >= 20) || (i >= 200 && i < 260) })
	c := Compare(a, b)
	r = c.Row("llmzszl", "acc")
	if r.Verdict != VerdictBetter || r.Test.Method != "mcnemar-chi2" || r.Test.P > 1e-4 {
		t.Errorf("60 vs 20 discordant: %+v %+v; want better by χ²", r, r.Test)
	}
	// The other way round it is worse.
	if r := Compare(b, a).Row("llmzszl", "acc"); r.Verdict != VerdictWorse {
		t.Errorf("reversed: %s; want worse", r.Verdict)
	}
	// Standard errors ride along: acc 0.5 on 400 → sqrt(0.25·400/399)/20.
	if !near(r.StderrA, math.Sqrt(0.25*400/399)/20, 1e-12) {
		t.Errorf("stderr %v", r.StderrA)
	}
	// At alpha 1e-6 the same difference is not significant.
	if r := CompareAt(a, b, 1e-6).Row("llmzszl", "acc"); r.Verdict != VerdictNotSignificant {
		t.Errorf("alpha 1e-6: %s", r.Verdict)
	}
}
