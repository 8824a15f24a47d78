package train

import (
	"math"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/tokenize"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

const headB, headT, headD, headV = 2, 11, 16, 50

// headInputs returns hidden states [2, 11, 16] and a head weight [50, 16]
// (fp32 leaves requiring grad) and targets with IgnoreIndex holes, a
// wholly ignored stretch and the largest id.
func headInputs(t *testing.T) (h, w, targets *ts.Tensor) {
	t.Helper()
	torchx.ManualSeed(3)
	h = ts.MustRandn([]int64{headB, headT, headD}, gotch.Float, gotch.CPU)
	w = ts.MustRandn([]int64{headV, headD}, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(0.5), true)
	h.MustRequiresGrad_(true)
	w.MustRequiresGrad_(true)
	tg := make([]int64, headB*headT)
	for i := range tg {
		tg[i] = int64((i * 7) % headV)
	}
	for _, i := range []int{0, 3, 4, 5, 6, 15, 21} {
		tg[i] = tokenize.IgnoreIndex
	}
	tg[9] = headV - 1
	targets = int64Tensor(tg, []int64{headB, headT}, gotch.CPU)
	return h, w, targets
}

// leafGrads returns (and clears) the gradients of the leaves.
func leafGrads(leaves ...*ts.Tensor) [][]float32 {
	var out [][]float32
	for _, l := range leaves {
		g := l.MustGrad(false)
		out = append(out, values(g))
		g.MustZero_()
		g.MustDrop()
	}
	return out
}

var headChunks = []int64{1, 3, 7, headB * headT, headB*headT + 5, 0}

// TestHeadCrossEntropyMatchesFullLogits checks the chunked loss and its
// gradients (dHidden, dW) against cross-entropy over the full logits with
// autograd, normalised as the trainer does (sum / units), with ignored
// targets and chunk sizes that do not divide the tokens.
func TestHeadCrossEntropyMatchesFullLogits(t *testing.T) {
	const tol = 1e-6
	h, w, targets := headInputs(t)
	defer h.MustDrop()
	defer w.MustDrop()
	defer targets.MustDrop()
	const units = 13.0
	logits := ts.MustLinear(h, w, ts.None).MustView([]int64{-1, headV}, true)
	tg := targets.MustView([]int64{-1}, false)
	sum := logits.MustCrossEntropyLoss(tg, ts.NewTensor(), 2, tokenize.IgnoreIndex, 0, true)
	tg.MustDrop()
	wantSum := values(sum)[0]
	scaled := sum.MustDivScalar(ts.FloatScalar(units), true)
	if err := scaled.Backward(); err != nil {
		t.Fatal(err)
	}
	scaled.MustDrop()
	want := leafGrads(h, w)

	for _, chunk := range headChunks {
		for _, weightGrad := range []bool{true, false} {
			head := &Head{W: w, Chunk: chunk, WeightGrad: weightGrad}
			s, g, err := head.CrossEntropy(h, targets, 1/units)
			if err != nil {
				t.Fatal(err)
			}
			if s.MustRequiresGrad() || g.Hidden.MustRequiresGrad() {
				t.Errorf("chunk %d: results carry a graph", chunk)
			}
			if d := maxRelDiff(values(s), []float32{wantSum}); d > tol {
				t.Errorf("chunk %d: loss sum %g; full logits %g", chunk, values(s)[0], wantSum)
			}
			if d := maxRelDiff(values(g.Hidden), want[0]); d > tol {
				t.Errorf("chunk %d: max |ΔdHidden| = %g", chunk, d)
			}
			switch {
			case weightGrad && g.Weight == nil:
				t.Errorf("chunk %d: no weight gradient", chunk)
			case weightGrad:
				if d := maxRelDiff(values(g.Weight), want[1]); d > tol {
					t.Errorf("chunk %d: max |ΔdW| = %g", chunk, d)
				}
			case g.Weight != nil:
				t.Errorf("chunk %d: a weight gradient for a frozen head", chunk)
			}
			s.MustDrop()
			g.Drop()
		}
	}
}

// TestHeadGradsBackwardIntoBody checks the two-phase use: gradients from
// the chunked head, pushed back through the body with backwardWith, give
// the body's parameters the gradients one backward over full logits gives.
func TestHeadGradsBackwardIntoBody(t *testing.T) {
	const tol = 1e-6
	_, w, targets := headInputs(t)
	defer w.MustDrop()
	defer targets.MustDrop()
	torchx.ManualSeed(5)
	x := ts.MustRandn([]int64{headB, headT, headD}, gotch.Float, gotch.CPU)
	body := ts.MustRandn([]int64{headD, headD}, gotch.Float, gotch.CPU)
	body.MustRequiresGrad_(true)
	defer x.MustDrop()
	defer body.MustDrop()
	run := func() *ts.Tensor { return ts.MustLinear(x, body, ts.None).MustTanh(true) }

	hidden := run()
	logits := ts.MustLinear(hidden, w, ts.None).MustView([]int64{-1, headV}, true)
	tg := targets.MustView([]int64{-1}, false)
	sum := logits.MustCrossEntropyLoss(tg, ts.NewTensor(), 2, tokenize.IgnoreIndex, 0, true).MustDivScalar(ts.FloatScalar(9), true)
	tg.MustDrop()
	if err := sum.Backward(); err != nil {
		t.Fatal(err)
	}
	sum.MustDrop()
	hidden.MustDrop()
	want := leafGrads(body, w)

	hidden = run()
	s, g, err := (&Head{W: w, Chunk: 5, WeightGrad: true}).CrossEntropy(hidden, targets, 1.0/9)
	if err != nil {
		t.Fatal(err)
	}
	s.MustDrop()
	if err := backwardWith([]*ts.Tensor{hidden, w}, []*ts.Tensor{g.Hidden, g.Weight}); err != nil {
		t.Fatal(err)
	}
	g.Drop()
	hidden.MustDrop()
	got := leafGrads(body, w)
	for i, name := range []string{"body", "head"} {
		if d := maxRelDiff(got[i], want[i]); d > tol {
			t.Errorf("%s weight: max |Δgrad| = %g", name, d)
		}
	}
}

// TestHeadSequenceLogProbsMatchFullLogits checks per-token and per-row
// log-probabilities, and the gradients of a nonlinear objective of the
// per-row sums (as ORPO's and DPO's are), against full-logit
// TokenLogProbs with autograd.
func TestHeadSequenceLogProbsMatchFullLogits(t *testing.T) {
	const tol = 1e-6
	h, w, targets := headInputs(t)
	defer h.MustDrop()
	defer w.MustDrop()
	defer targets.MustDrop()
	// Preference batches' targets are real ids everywhere (0 past the
	// end); masks pick what counts.
	safe := targets.MustClampMin(ts.IntScalar(0), false)
	defer safe.MustDrop()
	mk := func(f func(r, t int) bool) *ts.Tensor {
		v := make([]float32, headB*headT)
		for r := range headB {
			for t := range headT {
				if f(r, t) {
					v[r*headT+t] = 1
				}
			}
		}
		return ts.MustOfSlice(v).MustView([]int64{headB, headT}, true)
	}
	resp := mk(func(r, t int) bool { return t >= 4+r && t < headT-1 })
	all := mk(func(r, t int) bool { return t < headT-1 })
	defer resp.MustDrop()
	defer all.MustDrop()
	// objective: −log σ(0.1·(resp_0 − resp_1)) + 0.3·Σ_r (all_r/count)²,
	// DPO's shape on the summed response log-probs plus a nonlinear term
	// of the per-row means, as ORPO uses.
	objective := func(sums []*ts.Tensor) *ts.Tensor {
		r0 := sums[0].MustNarrow(0, 0, 1, false)
		r1 := sums[0].MustNarrow(0, 1, 1, false)
		a := r0.MustSub(r1, true).MustMulScalar(ts.FloatScalar(0.1), true).MustLogSigmoid(true).MustNeg(true).MustSum(gotch.Float, true)
		r1.MustDrop()
		b := sums[1].MustDivScalar(ts.FloatScalar(headT-1), false).MustSquare(true).MustMulScalar(ts.FloatScalar(0.3), true).MustSum(gotch.Float, true)
		out := a.MustAdd(b, true)
		b.MustDrop()
		return out
	}

	logits := ts.MustLinear(h, w, ts.None)
	lpFull := TokenLogProbs(logits, safe)
	logits.MustDrop()
	wantLp := values(lpFull)
	var sums []*ts.Tensor
	for _, m := range []*ts.Tensor{resp, all} {
		sums = append(sums, lpFull.MustMul(m, false).MustSumDimIntlist([]int64{1}, false, gotch.Float, true))
	}
	lpFull.MustDrop()
	wantSums := [][]float32{values(sums[0]), values(sums[1])}
	loss := objective(sums)
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	loss.MustDrop()
	for _, s := range sums {
		s.MustDrop()
	}
	want := leafGrads(h, w)

	for _, chunk := range headChunks {
		head := &Head{W: w, Chunk: chunk, WeightGrad: true}
		lp, err := head.TokenLogProbs(h, safe)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxRelDiff(values(lp), wantLp); d > tol {
			t.Errorf("chunk %d: max |Δlog p| = %g", chunk, d)
		}
		lp.MustDrop()
		got, err := head.SequenceLogProbs(h, safe, resp, all)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if d := maxRelDiff(values(got[i]), wantSums[i]); d > tol {
				t.Errorf("chunk %d: sums %d: max |Δ| = %g", chunk, i, d)
			}
			// The objective's gradient with respect to the sums, by
			// autograd on leaves holding them.
			got[i].MustRequiresGrad_(true)
		}
		l := objective(got)
		// gotch's RunBackward (autograd.grad) crashes; backward into the
		// leaves and read their .grad instead.
		if err := l.Backward(); err != nil {
			t.Fatal(err)
		}
		l.MustDrop()
		var dSums []*ts.Tensor
		for _, x := range got {
			dSums = append(dSums, x.MustGrad(false))
		}
		g, err := head.SequenceLogProbsBackward(h, safe, []*ts.Tensor{resp, all}, dSums)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxRelDiff(values(g.Hidden), want[0]); d > tol {
			t.Errorf("chunk %d: max |ΔdHidden| = %g", chunk, d)
		}
		if d := maxRelDiff(values(g.Weight), want[1]); d > tol {
			t.Errorf("chunk %d: max |ΔdW| = %g", chunk, d)
		}
		g.Drop()
		for _, x := range append(got, dSums...) {
			x.MustDrop()
		}
	}
}

// TestHeadBadInput checks the errors for mismatched shapes and ids.
func TestHeadBadInput(t *testing.T) {
	h, w, targets := headInputs(t)
	defer h.MustDrop()
	defer w.MustDrop()
	defer targets.MustDrop()
	head := &Head{W: w}
	short := targets.MustNarrow(1, 0, 5, false)
	defer short.MustDrop()
	if _, _, err := head.CrossEntropy(h, short, 1); err == nil {
		t.Error("targets of another shape: no error")
	}
	big := targets.MustAddScalar(ts.IntScalar(headV), false)
	defer big.MustDrop()
	if _, err := head.TokenLogProbs(h, big); err == nil {
		t.Error("target outside the vocabulary: no error")
	}
	wrongD := h.MustNarrow(2, 0, 3, false)
	defer wrongD.MustDrop()
	if _, _, err := head.CrossEntropy(wrongD, targets, 1); err == nil {
		t.Error("hidden size not the head's: no error")
	}
	if _, err := head.SequenceLogProbsBackward(h, targets, nil, nil); err == nil {
		t.Error("no masks: no error")
	}
}

// TestModelHeadMatchesLMObjective runs a tiny Llama's body by hand and
// checks that the chunked head gives LMObjective.Loss's sum, and that the
// tied and untied heads are picked.
func TestModelHeadMatchesLMObjective(t *testing.T) {
	m := tinyLlama(t, 40)
	rows := countingRows(3, 40, true)
	o := NewLMObjective(m, rows, 0)
	idx := []int{0}
	var want float32
	torchx.NoGrad(func() {
		l, err := o.Loss(idx)
		if err != nil {
			t.Fatal(err)
		}
		want = values(l.Sum)[0]
		l.Sum.MustDrop()
	})
	bt, err := o.batch(idx)
	if err != nil {
		t.Fatal(err)
	}
	defer bt.drop()
	var got float32
	torchx.NoGrad(func() {
		hidden := bodyHidden(t, m, bt)
		defer hidden.MustDrop()
		head := m.Head()
		if head.W != m.net.Head.Weight || !head.WeightGrad {
			t.Errorf("untied model: Head weight is not lm_head.weight with its gradient")
		}
		head.Chunk = 7
		s, g, err := head.CrossEntropy(hidden, bt.targets, 1)
		if err != nil {
			t.Fatal(err)
		}
		got = values(s)[0]
		s.MustDrop()
		g.Drop()
	})
	if d := maxRelDiff([]float32{got}, []float32{want}); d > 1e-6 {
		t.Errorf("chunked loss %g; LMObjective.Loss %g", got, want)
	}
	tied := &Model{net: decoder{Embed: m.net.Embed}}
	if tied.Head().W != m.net.Embed.Weight {
		t.Error("tied model: Head weight is not the embedding")
	}
}

// bodyHidden runs the model's body and final norm as Forward does.
func bodyHidden(t *testing.T, m *Model, bt *batchTensors) *ts.Tensor {
	t.Helper()
	s := bt.ids.MustSize()
	st, err := m.prepare(s[0], s[1], ForwardOptions{PositionIDs: bt.pos, SegmentIDs: bt.seg, AttentionMask: bt.mask})
	if err != nil {
		t.Fatal(err)
	}
	defer st.drop()
	x := m.net.Embed.Forward(bt.ids)
	for i, l := range m.net.Layers {
		x = m.layerForward(i, l, x, st, nil)
	}
	h := m.net.Norm.Forward(x)
	x.MustDrop()
	return h
}

// BenchmarkHeadMemory measures the LM head and cross-entropy with their
// backward for 8,192 tokens of the tiny Llama (hidden 256, vocab 32,000,
// fp32 CPU, head weight trained): full logits with autograd, as
// LMObjective.Loss computes them, against the chunked Head. It reports the
// peak resident memory above the inputs (peak-MB, as
// BenchmarkAttentionMemory measures it):
//
//	go test ./train -run '^$' -bench HeadMemory -benchtime 2x
func BenchmarkHeadMemory(b *testing.B) {
	const N, D, V = 8192, 256, 32000
	for _, path := range []string{"full", "chunked"} {
		b.Run(path, func(b *testing.B) {
			torchx.ManualSeed(1)
			h := ts.MustRandn([]int64{N, D}, gotch.Float, gotch.CPU)
			w := ts.MustRandn([]int64{V, D}, gotch.Float, gotch.CPU).MustMulScalar(ts.FloatScalar(0.02), true)
			w.MustRequiresGrad_(true)
			tg := ts.MustRandint(V, []int64{N}, gotch.Int64, gotch.CPU)
			defer func() {
				for _, t := range []*ts.Tensor{h, w, tg} {
					t.MustDrop()
				}
			}()
			peak := int64(math.MaxInt64)
			for range b.N {
				b.StopTimer()
				hl := h.MustDetach(false)
				hl.MustRequiresGrad_(true)
				torchx.ReleaseFreeMemory()
				base := resetPeakRSS(b)
				b.StartTimer()
				switch path {
				case "full":
					logits := ts.MustLinear(hl, w, ts.None)
					sum := logits.MustCrossEntropyLoss(tg, ts.NewTensor(), 2, tokenize.IgnoreIndex, 0, true)
					if err := sum.Backward(); err != nil {
						b.Fatal(err)
					}
					sum.MustDrop()
				case "chunked":
					sum, g, err := (&Head{W: w, WeightGrad: true}).CrossEntropy(hl, tg, 1)
					if err != nil {
						b.Fatal(err)
					}
					if err := backwardWith([]*ts.Tensor{hl, w}, []*ts.Tensor{g.Hidden, g.Weight}); err != nil {
						b.Fatal(err)
					}
					sum.MustDrop()
					g.Drop()
				}
				b.StopTimer()
				peak = min(peak, procStatusKB(b, "VmHWM:")-base)
				hl.MustDrop()
				g := w.MustGrad(false)
				g.MustZero_()
				g.MustDrop()
				b.StartTimer()
			}
			b.ReportMetric(float64(peak)/1024, "peak-MB")
		})
	}
}

// TestHeadBF16 runs the chunked head on bf16 hidden states and weight (the
// casts the fp32 tests do not reach) and checks loss and gradients against
// the fp32 full-logit path within bf16's precision, and the dtypes.
func TestHeadBF16(t *testing.T) {
	h, w, targets := headInputs(t)
	defer h.MustDrop()
	defer w.MustDrop()
	defer targets.MustDrop()
	logits := ts.MustLinear(h, w, ts.None).MustView([]int64{-1, headV}, true)
	tg := targets.MustView([]int64{-1}, false)
	sum := logits.MustCrossEntropyLoss(tg, ts.NewTensor(), 2, tokenize.IgnoreIndex, 0, true)
	tg.MustDrop()
	wantSum := values(sum)
	if err := sum.Backward(); err != nil {
		t.Fatal(err)
	}
	sum.MustDrop()
	want := leafGrads(h, w)

	hb := h.MustDetach(false).MustTotype(gotch.BFloat16, true)
	wb := w.MustDetach(false).MustTotype(gotch.BFloat16, true)
	defer hb.MustDrop()
	defer wb.MustDrop()
	s, g, err := (&Head{W: wb, Chunk: 5, WeightGrad: true}).CrossEntropy(hb, targets, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.MustDrop()
	defer g.Drop()
	if s.DType() != gotch.Float || g.Hidden.DType() != gotch.BFloat16 || g.Weight.DType() != gotch.Float {
		t.Errorf("dtypes: loss %v, dHidden %v, dW %v; want float, bfloat16, float", s.DType(), g.Hidden.DType(), g.Weight.DType())
	}
	const tol = 3e-2
	if d := maxRelDiff(values(s), wantSum); d > tol {
		t.Errorf("loss: relative difference %g from fp32", d)
	}
	for i, x := range []*ts.Tensor{g.Hidden, g.Weight} {
		if d := maxRelDiff(values(x), want[i]); d > tol {
			t.Errorf("gradient %d: difference %g from fp32", i, d)
		}
	}
}
