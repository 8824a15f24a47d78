package align

import (
	"errors"
	"math"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func vec(vals []float64, dt gotch.DType) *ts.Tensor {
	return ts.MustOfSlice(vals).MustTotype(dt, true)
}

// refLog1mexp is log(1 − eˣ) in float64 by the same two formulas, checked
// against plain math where plain math is exact enough.
func refLog1mexp(x float64) float64 {
	if x > -math.Ln2 {
		return math.Log(-math.Expm1(x))
	}
	return math.Log1p(-math.Exp(x))
}

func logSigmoid(z float64) float64 {
	if z >= 0 {
		return -math.Log1p(math.Exp(-z))
	}
	return z - math.Log1p(math.Exp(z))
}

func closeTo(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Max(1, math.Abs(want))
}

// TestLog1mexp: fp32 values match float64 over the whole range, where a
// naive log(1 − eˣ) in fp32 is −∞ near 0; gradients stay finite, even at 0.
func TestLog1mexp(t *testing.T) {
	xs := []float64{-1e-30, -1e-9, -1e-6, -1e-3, -0.3, -math.Ln2, -0.7, -2, -20, -90, -200, -1e4}
	for _, dt := range []gotch.DType{gotch.Float, gotch.Double} {
		x := vec(xs, dt)
		got := log1mexp(x).Float64Values(true)
		for i, v := range xs {
			want := refLog1mexp(float64(float32(v)))
			if dt == gotch.Double {
				want = refLog1mexp(v)
			}
			if !closeTo(got[i], want, 1e-6) {
				t.Errorf("%v: log1mexp(%g) = %.9g, want %.9g", dt, v, got[i], want)
			}
		}
		x.MustDrop()
	}
	// The naive formula is −∞ at −1e-9 in fp32: the case the stable one exists for.
	x := vec([]float64{-1e-9}, gotch.Float)
	naive := x.MustExp(false).MustNeg(true).MustAddScalar(ts.FloatScalar(1), true).MustLog(true).Float64Values(true)
	if !math.IsInf(naive[0], -1) {
		t.Fatalf("naive log(1 − exp(−1e-9)) in fp32 = %v; the test assumes −Inf", naive[0])
	}
	x.MustDrop()

	torchx.SetGradEnabled(true)
	x = vec([]float64{0, -1e-9, -math.Ln2, -50, -1e4}, gotch.Float).MustSetRequiresGrad(true, true)
	y := log1mexp(x).MustSum(gotch.Float, true)
	if err := y.Backward(); err != nil {
		t.Fatal(err)
	}
	g := x.MustGrad(false)
	for i, v := range g.Float64Values(true) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("gradient %d of log1mexp is %v", i, v)
		}
	}
	y.MustDrop()
	x.MustDrop()
}

// TestORPOLossValues checks the per-pair loss against values worked out by
// hand (the first row) and in float64 (the rest), including mean log-probs
// so close to 0 that a naive log(1 − eˣ) makes the log-odds NaN in fp32.
func TestORPOLossValues(t *testing.T) {
	tests := []struct {
		name            string
		lc, lr, nll, b  float64
		wantOdds, wantL float64
	}{
		// p̄c = 0.5, p̄r = 0.25: odds 1 and 1/3, log-odds ln 3, log σ = ln ¾.
		{"by hand", math.Log(0.5), math.Log(0.25), math.Log(2), 0.1, math.Log(3), math.Log(2) - 0.1*math.Log(0.75)},
		{"near zero", -1e-9, -1e-8, 1e-9, 0.1, 0, 0},
		{"far apart", -0.01, -40, 0.01, 0.5, 0, 0},
		{"rejected preferred", -3, -0.2, 3, 0.1, 0, 0},
		{"very negative", -200, -300, 200, 0.1, 0, 0},
	}
	for _, tt := range tests {
		wantOdds := (tt.lc - tt.lr) - (refLog1mexp(tt.lc) - refLog1mexp(tt.lr))
		wantL := tt.nll - tt.b*logSigmoid(wantOdds)
		if tt.wantOdds != 0 && (!closeTo(wantOdds, tt.wantOdds, 1e-12) || !closeTo(wantL, tt.wantL, 1e-12)) {
			t.Fatalf("%s: the float64 reference disagrees with the hand value", tt.name)
		}
		for _, dt := range []gotch.DType{gotch.Float, gotch.Double} {
			lc, lr, nll := vec([]float64{tt.lc}, dt), vec([]float64{tt.lr}, dt), vec([]float64{tt.nll}, dt)
			loss, odds, ratio := orpoLoss(lc, lr, nll, tt.b)
			gotL, gotOdds := loss.Float64Values(true)[0], odds.Float64Values(true)[0]
			ratio.MustDrop()
			rel := 1e-5
			if dt == gotch.Double {
				rel = 1e-12
			}
			if !closeTo(gotOdds, wantOdds, rel) || !closeTo(gotL, wantL, rel) {
				t.Errorf("%s (%v): log-odds %.9g loss %.9g, want %.9g and %.9g", tt.name, dt, gotOdds, gotL, wantOdds, wantL)
			}
			for _, x := range []*ts.Tensor{lc, lr, nll} {
				x.MustDrop()
			}
		}
	}
}

func TestDPOLossValues(t *testing.T) {
	tests := []struct {
		name                       string
		pc, pr, rc, rr, beta, want float64
	}{
		// β·((−10+11) − (−12+11)) = 0.2; −log σ(0.2) = log(1 + e^−0.2).
		{"by hand", -10, -12, -11, -11, 0.1, math.Log1p(math.Exp(-0.2))},
		{"equal to reference", -5, -7, -5, -7, 0.1, math.Ln2},
		{"large margin", -1, -900, -400, -400, 0.5, -logSigmoid(449.5)},
		{"wrong way", -900, -1, -400, -400, 0.5, -logSigmoid(-449.5)},
	}
	for _, tt := range tests {
		pc, pr, rc, rr := vec([]float64{tt.pc}, gotch.Float), vec([]float64{tt.pr}, gotch.Float), vec([]float64{tt.rc}, gotch.Float), vec([]float64{tt.rr}, gotch.Float)
		loss, rewC, rewR := dpoLoss(pc, pr, rc, rr, tt.beta)
		got := loss.Float64Values(true)[0]
		if !closeTo(got, tt.want, 1e-5) {
			t.Errorf("%s: loss %.9g, want %.9g", tt.name, got, tt.want)
		}
		if c, r := rewC.Float64Values(true)[0], rewR.Float64Values(true)[0]; !closeTo(c, tt.beta*(tt.pc-tt.rc), 1e-5) || !closeTo(r, tt.beta*(tt.pr-tt.rr), 1e-5) {
			t.Errorf("%s: rewards %g, %g", tt.name, c, r)
		}
		for _, x := range []*ts.Tensor{pc, pr, rc, rr} {
			x.MustDrop()
		}
	}
}

// bigram is a fixed-logits language model: the logits after token i are
// row i of W. In fp64 it serves the finite-difference gradient check.
type bigram struct{ w *ts.Tensor }

func newBigram(V int, dt gotch.DType, seed float64) *bigram {
	vals := make([]float64, V*V)
	for i := range vals {
		vals[i] = 1.5 * math.Sin(float64(i)*seed+0.3)
	}
	return &bigram{w: ts.MustOfSlice(vals).MustTotype(dt, true).MustView([]int64{int64(V), int64(V)}, true)}
}

func (b *bigram) forward(ids *ts.Tensor, _ train.ForwardOptions) (*train.Output, error) {
	s := ids.MustSize()
	flat := ids.MustView([]int64{-1}, false)
	rows := b.w.MustIndexSelect(0, flat, false)
	flat.MustDrop()
	V := b.w.MustSize()[1]
	return &train.Output{Logits: rows.MustView([]int64{s[0], s[1], V}, true)}, nil
}

func (b *bigram) vals() [][]float64 {
	v := b.w.Float64Values()
	V := int(math.Sqrt(float64(len(v))))
	out := make([][]float64, V)
	for i := range out {
		out[i] = v[i*V : (i+1)*V]
	}
	return out
}

// logp is log softmax(W[prev])[next] in float64.
func logp(w [][]float64, prev, next int) float64 {
	m := math.Inf(-1)
	for _, x := range w[prev] {
		m = math.Max(m, x)
	}
	s := 0.0
	for _, x := range w[prev] {
		s += math.Exp(x - m)
	}
	return w[prev][next] - m - math.Log(s)
}

// seqLogp sums log p over the trained positions of s (all positions when
// all is set) and returns the sum and the count.
func seqLogp(w [][]float64, s tokenize.Sequence, all bool) (float64, float64) {
	var sum, n float64
	for t := 1; t < len(s.IDs); t++ {
		if all || s.Labels[t] != tokenize.IgnoreIndex {
			sum += logp(w, s.IDs[t-1], s.IDs[t])
			n++
		}
	}
	return sum, n
}

// seq builds a sequence whose first promptLen tokens are not trained.
func seq(ids []int, promptLen int) tokenize.Sequence {
	s := tokenize.Sequence{IDs: ids, Labels: make([]int, len(ids))}
	for i, id := range ids {
		s.Labels[i] = id
		if i < promptLen {
			s.Labels[i] = tokenize.IgnoreIndex
		}
	}
	return s
}

func pair(prompt, chosen, rejected []int) tokenize.PreferenceExample {
	c := append(append([]int(nil), prompt...), chosen...)
	r := append(append([]int(nil), prompt...), rejected...)
	return tokenize.PreferenceExample{Chosen: seq(c, len(prompt)), Rejected: seq(r, len(prompt)), PromptLen: len(prompt)}
}

// fixedPairs have different lengths, so padding and per-pair means matter.
func fixedPairs() []tokenize.PreferenceExample {
	return []tokenize.PreferenceExample{
		pair([]int{0, 1}, []int{2, 3, 4}, []int{4, 4}),
		pair([]int{3}, []int{1}, []int{2, 0, 1, 2}),
		pair([]int{4, 2, 1}, []int{0, 0}, []int{3}),
	}
}

// TestORPOObjectiveOnFixedLogits: the objective's summed loss and metrics
// equal the formula evaluated by hand in float64 from the same logits.
func TestORPOObjectiveOnFixedLogits(t *testing.T) {
	for _, onPrompt := range []bool{false, true} {
		bg := newBigram(5, gotch.Double, 0.7)
		pairs := fixedPairs()
		o := &ORPO{Pairs: pairs, PadID: 4, Config: ORPOConfig{Beta: 0.25, NLLOnPrompt: onPrompt}, forward: bg.forward}
		idx := []int{2, 0, 1}
		l, err := o.Loss(idx)
		if err != nil {
			t.Fatal(err)
		}
		w := bg.vals()
		var want, acc, odds float64
		for _, j := range idx {
			sc, nc := seqLogp(w, pairs[j].Chosen, false)
			sr, nr := seqLogp(w, pairs[j].Rejected, false)
			lc, lr := sc/nc, sr/nr
			nll := -lc
			if onPrompt {
				s, n := seqLogp(w, pairs[j].Chosen, true)
				nll = -s / n
			}
			lo := (lc - lr) - (math.Log(-math.Expm1(lc)) - math.Log(-math.Expm1(lr)))
			want += nll - 0.25*logSigmoid(lo)
			odds += lo
			if lc > lr {
				acc++
			}
		}
		got := l.Sum.Float64Values(true)[0]
		if !closeTo(got, want, 1e-12) {
			t.Errorf("NLLOnPrompt=%v: loss sum %.15g, want %.15g", onPrompt, got, want)
		}
		if !closeTo(l.Metric("log_odds"), odds, 1e-12) || l.Metric("reward_accuracy") != acc {
			t.Errorf("NLLOnPrompt=%v: metrics %v; want log_odds %g, reward_accuracy %g", onPrompt, l.DeviceMetrics, odds, acc)
		}
		if wantTok := 5 + 4 + 5 + 4 + 2 + 5; l.Tokens != wantTok {
			t.Errorf("Tokens = %d, want %d", l.Tokens, wantTok)
		}
		bg.w.MustDrop()
	}
}

func TestDPOObjectiveOnFixedLogits(t *testing.T) {
	policy, ref := newBigram(5, gotch.Double, 0.7), newBigram(5, gotch.Double, 1.9)
	defer policy.w.MustDrop()
	defer ref.w.MustDrop()
	pairs := fixedPairs()
	refs, err := referenceLogProbs(t.Context(), nil, ref.forward, pairs, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	o := &DPO{Pairs: pairs, Config: DPOConfig{Beta: 0.3}, forward: policy.forward, Reference: refs}
	l, err := o.Loss([]int{1, 2, 0})
	if err != nil {
		t.Fatal(err)
	}
	wp, wr := policy.vals(), ref.vals()
	var want, margin float64
	for _, p := range pairs {
		pc, _ := seqLogp(wp, p.Chosen, false)
		pr, _ := seqLogp(wp, p.Rejected, false)
		rc, _ := seqLogp(wr, p.Chosen, false)
		rr, _ := seqLogp(wr, p.Rejected, false)
		want += -logSigmoid(0.3 * ((pc - rc) - (pr - rr)))
		margin += 0.3 * ((pc - rc) - (pr - rr))
	}
	if got := l.Sum.Float64Values(true)[0]; !closeTo(got, want, 1e-12) {
		t.Errorf("loss sum %.15g, want %.15g", got, want)
	}
	if !closeTo(l.Metric("reward_margin"), margin, 1e-12) {
		t.Errorf("reward_margin %.15g, want %.15g", l.Metric("reward_margin"), margin)
	}
}

// TestEmptyResponseIsAnError: a side with no response token is rejected
// with the pair named, never scored as NaN.
func TestEmptyResponseIsAnError(t *testing.T) {
	pairs := fixedPairs()
	pairs[1].Rejected = seq([]int{3, 2}, 2)
	if err := CheckPairs(pairs); err == nil || !errors.Is(err, ErrNoResponse) {
		t.Fatalf("CheckPairs = %v, want ErrNoResponse", err)
	}
	kept, dropped := DropEmpty(pairs)
	if len(kept) != 2 || dropped != 1 {
		t.Fatalf("DropEmpty kept %d, dropped %d", len(kept), dropped)
	}
	bg := newBigram(5, gotch.Float, 0.7)
	defer bg.w.MustDrop()
	o := &ORPO{Pairs: pairs, Config: ORPOConfig{Beta: 0.1}, forward: bg.forward}
	if _, err := o.Loss([]int{0, 1}); err == nil || !errors.Is(err, ErrNoResponse) {
		t.Fatalf("Loss = %v, want ErrNoResponse", err)
	}
}
