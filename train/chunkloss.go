package train

import (
	"errors"
	"fmt"
	"slices"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Head is the language-model head used as a chunked loss: the final hidden
// states (after the last norm) go in, losses or log-probabilities and their
// gradients come out, and the full [tokens, vocab] fp32 logits never exist,
// as in torchtune's chunked cross-entropy and Liger's fused linear
// cross-entropy. Each chunk of Chunk tokens computes its logits h·Wᵀ (in
// W's dtype, then fp32 for the softmax) and, where gradients are asked
// for, its gradient softmax − one-hot right away, adding into dHidden and
// dW; the chunk's logits are freed before the next.
//
// The passes run without autograd. The caller continues backward through
// the body with the returned gradients: Backward(hidden, grads.Hidden) and,
// when the head weight is trained, Backward(W, grads.Weight) — together in
// one call of backwardWith.
type Head struct {
	W *ts.Tensor // [V, D]: lm_head.weight, or the embedding when tied
	// Chunk is the number of tokens per chunk; ≤ 0 means
	// DefaultHeadChunk(V).
	Chunk int64
	// WeightGrad asks for dLoss/dW too (full fine-tuning); a frozen head
	// (LoRA) needs only dHidden.
	WeightGrad bool
}

// headChunkElems bounds one chunk's fp32 logits: 2^24 values (64 MiB).
const headChunkElems = 1 << 24

// DefaultHeadChunk is the chunk length for a vocabulary of v tokens: as
// many tokens as keep one chunk's fp32 logits at 64 MiB (524 tokens for
// Llama-2's 32,000, 130 for Llama-3's 128,256).
func DefaultHeadChunk(v int64) int64 { return max(1, headChunkElems/max(1, v)) }

// Head returns the model's LM head (the embedding when tied), asking for
// its weight gradient when the weight requires one.
func (m *Model) Head() *Head {
	w := m.net.Embed.Weight
	if m.net.Head != nil {
		w = m.net.Head.Weight
	}
	return &Head{W: w, WeightGrad: w.MustRequiresGrad()}
}

// HeadGrads are the gradients a chunked head pass returns; Drop frees them.
type HeadGrads struct {
	Hidden *ts.Tensor // shaped like hidden, in its dtype
	Weight *ts.Tensor // [V, D] fp32 (fp64 for fp64 hidden states); nil unless Head.WeightGrad
}

// Drop frees the gradients.
func (g *HeadGrads) Drop() {
	for _, t := range []*ts.Tensor{g.Hidden, g.Weight} {
		if t != nil {
			t.MustDrop()
		}
	}
}

// CrossEntropy returns the summed next-token cross-entropy of the targets
// that are not tokenize.IgnoreIndex (a scalar on the device, fp32; the
// same sum LMObjective.Loss computes from full logits) and the gradients
// of gradScale × that sum — gradScale is 1/units of the accumulation
// window, the normalisation the trainer applies to LMObjective's loss.
// hidden is [..., D], targets has hidden's leading shape (int64).
func (h *Head) CrossEntropy(hidden, targets *ts.Tensor, gradScale float64) (sum *ts.Tensor, g *HeadGrads, err error) {
	p, err := h.prepare(hidden, targets)
	if err != nil {
		return nil, nil, err
	}
	defer p.drop()
	torchx.NoGrad(func() {
		// d(gradScale·Σ −log p)/d log p = −gradScale on every counted target.
		gs := ts.FloatScalar(-gradScale)
		dLp := p.valid.MustMulScalar(gs, false)
		keepAlive(gs)
		defer dLp.MustDrop()
		var lp *ts.Tensor
		lp, g = h.pass(p, dLp, true)
		sum = lp.MustMul(p.valid, true).MustSum(p.ct, true).MustNeg(true)
	})
	return sum, g, nil
}

// TokenLogProbs returns log p(targets) at each position ([leading shape],
// fp32, or fp64 for fp64 hidden states) without autograd; positions whose
// target is negative (tokenize.IgnoreIndex) get 0. It equals
// TokenLogProbs(logits, targets) of the full logits.
func (h *Head) TokenLogProbs(hidden, targets *ts.Tensor) (*ts.Tensor, error) {
	p, err := h.prepare(hidden, targets)
	if err != nil {
		return nil, err
	}
	defer p.drop()
	var lp *ts.Tensor
	torchx.NoGrad(func() {
		lp, _ = h.pass(p, nil, true)
		lp = lp.MustMul(p.valid, true).MustView(p.lead, true)
	})
	return lp, nil
}

// TokenLogProbsBackward returns the gradients of a loss given dLogProbs,
// its gradient with respect to TokenLogProbs' result (same shape). The
// chunks' logits are recomputed: d logits = dLogProbs · (one-hot − softmax).
func (h *Head) TokenLogProbsBackward(hidden, targets, dLogProbs *ts.Tensor) (*HeadGrads, error) {
	p, err := h.prepare(hidden, targets)
	if err != nil {
		return nil, err
	}
	defer p.drop()
	if s := dLogProbs.MustSize(); !slices.Equal(s, p.lead) {
		return nil, fmt.Errorf("train: head backward: gradient shape %v; want %v like the targets", s, p.lead)
	}
	var g *HeadGrads
	torchx.NoGrad(func() {
		d := dLogProbs.MustTotype(p.ct, false).MustReshape([]int64{-1}, true).MustMul(p.valid, true)
		defer d.MustDrop()
		_, g = h.pass(p, d, false)
	})
	return g, nil
}

// SequenceLogProbs returns, for each mask ([R, T] float, 1 where a target
// counts), the per-row sums Σ_t mask[r, t] · log p(targets[r, t]) as an
// [R] tensor (fp32, fp64 for fp64 hidden states): the summed response
// log-probabilities DPO uses, and with the row's mask count the means
// ORPO uses. hidden is [R, T, D], targets [R, T] int64. No autograd.
func (h *Head) SequenceLogProbs(hidden, targets *ts.Tensor, masks ...*ts.Tensor) ([]*ts.Tensor, error) {
	lp, err := h.TokenLogProbs(hidden, targets)
	if err != nil {
		return nil, err
	}
	defer lp.MustDrop()
	out := make([]*ts.Tensor, len(masks))
	var merr error
	torchx.NoGrad(func() {
		for i, m := range masks {
			mm, err := maskLike(m, lp)
			if err != nil {
				merr = err
				break
			}
			out[i] = lp.MustMul(mm, false).MustSumDimIntlist([]int64{1}, false, lp.DType(), true)
			mm.MustDrop()
		}
	})
	if merr != nil {
		for _, t := range out {
			if t != nil {
				t.MustDrop()
			}
		}
		return nil, merr
	}
	return out, nil
}

// SequenceLogProbsBackward returns the gradients of a loss given dSums[i],
// its gradient with respect to SequenceLogProbs' i-th result ([R]): each
// counted token of row r receives Σ_i dSums[i][r] · masks[i][r, t]. For a
// mean, scale dSums by 1/count first (autograd through the division does).
func (h *Head) SequenceLogProbsBackward(hidden, targets *ts.Tensor, masks, dSums []*ts.Tensor) (*HeadGrads, error) {
	if len(masks) != len(dSums) || len(masks) == 0 {
		return nil, fmt.Errorf("train: head backward: %d masks and %d gradients; want as many of each, at least one", len(masks), len(dSums))
	}
	ts0 := targets.MustSize()
	var d *ts.Tensor
	var merr error
	torchx.NoGrad(func() {
		for i, m := range masks {
			if s := dSums[i].MustSize(); len(s) != 1 || len(ts0) != 2 || s[0] != ts0[0] {
				merr = fmt.Errorf("train: head backward: gradient %d shape %v; want [%d]", i, s, ts0[0])
				return
			}
			ref := ts.MustZeros(ts0, computeDType(hidden), hidden.MustDevice())
			mm, err := maskLike(m, ref)
			ref.MustDrop()
			if err != nil {
				merr = err
				return
			}
			ds := dSums[i].MustTotype(mm.DType(), false).MustTo(mm.MustDevice(), true).MustUnsqueeze(1, true)
			part := mm.MustMul(ds, true)
			ds.MustDrop()
			if d == nil {
				d = part
			} else {
				d = d.MustAdd(part, true)
				part.MustDrop()
			}
		}
	})
	if merr != nil {
		if d != nil {
			d.MustDrop()
		}
		return nil, merr
	}
	defer d.MustDrop()
	return h.TokenLogProbsBackward(hidden, targets, d)
}

// headInput is one pass's flattened inputs.
type headInput struct {
	h     *ts.Tensor // [N, D]
	tgt   *ts.Tensor // [N] int64, ignored targets replaced by 0
	valid *ts.Tensor // [N] ct: 1 where the target counts
	lead  []int64    // hidden's leading shape (= targets')
	shape []int64    // hidden's shape
	ct    gotch.DType
	n     int64
}

func (p *headInput) drop() {
	for _, t := range []*ts.Tensor{p.h, p.tgt, p.valid} {
		t.MustDrop()
	}
}

func computeDType(hidden *ts.Tensor) gotch.DType {
	if hidden.DType() == gotch.Double {
		return gotch.Double
	}
	return gotch.Float
}

// maskLike returns mask in like's dtype and device, checking its shape.
func maskLike(mask, like *ts.Tensor) (*ts.Tensor, error) {
	if s, w := mask.MustSize(), like.MustSize(); !slices.Equal(s, w) {
		return nil, fmt.Errorf("train: head: mask shape %v; want %v like the targets", s, w)
	}
	return mask.MustTotype(like.DType(), false).MustTo(like.MustDevice(), true), nil
}

func (h *Head) prepare(hidden, targets *ts.Tensor) (*headInput, error) {
	if h.W == nil {
		return nil, errors.New("train: Head has no weight")
	}
	ws := h.W.MustSize()
	hs := hidden.MustSize()
	if len(hs) < 2 || hs[len(hs)-1] != ws[1] {
		return nil, fmt.Errorf("train: head: hidden states shape %v; want [..., %d]", hs, ws[1])
	}
	lead := hs[:len(hs)-1]
	if s := targets.MustSize(); !slices.Equal(s, lead) {
		return nil, fmt.Errorf("train: head: targets shape %v; want %v like the hidden states", s, lead)
	}
	if targets.DType() != gotch.Int64 {
		return nil, fmt.Errorf("train: head: targets dtype %v; want int64", targets.DType())
	}
	if mx, _ := tensorMaxMin(targets); mx >= ws[0] {
		return nil, fmt.Errorf("train: head: target %d outside the vocabulary [0, %d)", mx, ws[0])
	}
	p := &headInput{lead: lead, shape: hs, ct: computeDType(hidden)}
	torchx.NoGrad(func() {
		p.h = hidden.MustDetach(false).MustReshape([]int64{-1, ws[1]}, true)
		p.n = p.h.MustSize()[0]
		t := targets.MustTo(hidden.MustDevice(), false).MustReshape([]int64{-1}, true)
		zero := ts.IntScalar(0)
		ok := t.MustGe(zero, false)
		p.valid = ok.MustTotype(p.ct, false)
		notOK := ok.MustLogicalNot(true)
		p.tgt = t.MustMaskedFill(notOK, zero, true)
		keepAlive(zero)
		notOK.MustDrop()
	})
	return p, nil
}

// pass walks the chunks. It returns the per-token log-probabilities [N]
// when withLp is set, and when dLp ([N]) is not nil the gradients of
// Σ dLp · log p: d logits = dLp · (one-hot − softmax). Run under NoGrad.
func (h *Head) pass(p *headInput, dLp *ts.Tensor, withLp bool) (lp *ts.Tensor, g *HeadGrads) {
	V, D := h.W.MustSize()[0], h.W.MustSize()[1]
	chunk := h.Chunk
	if chunk <= 0 {
		chunk = DefaultHeadChunk(V)
	}
	dev := p.h.MustDevice()
	if withLp {
		lp = ts.MustEmpty([]int64{p.n}, p.ct, dev)
	}
	var wc *ts.Tensor // W in the compute dtype, for the gradient matmuls
	if dLp != nil {
		g = &HeadGrads{Hidden: ts.MustEmpty([]int64{p.n, D}, p.h.DType(), dev)}
		if h.WeightGrad {
			g.Weight = ts.MustZeros([]int64{V, D}, p.ct, dev)
		}
		wc = h.W
		if h.W.DType() != p.h.DType() {
			wc = h.W.MustTotype(p.h.DType(), false)
			defer wc.MustDrop()
		}
	}
	w := h.W
	if w.DType() != p.h.DType() {
		w = h.W.MustTotype(p.h.DType(), false)
		defer w.MustDrop()
	}
	for i := int64(0); i < p.n; i += chunk {
		n := min(chunk, p.n-i)
		hc := p.h.MustNarrow(0, i, n, false)
		tc := p.tgt.MustNarrow(0, i, n, false).MustUnsqueeze(1, true) // [n, 1]
		logits := ts.MustLinear(hc, w, ts.None)
		if logits.DType() != p.ct {
			logits = logits.MustTotype(p.ct, true)
		}
		lse := logits.MustLogsumexp([]int64{1}, true, false) // [n, 1]
		picked := logits.MustGather(1, tc, false, false)     // [n, 1]
		lpc := picked.MustSub(lse, true)                     // log p(target)
		if withLp {
			dst := lp.MustNarrow(0, i, n, false)
			src := lpc.MustView([]int64{n}, false)
			dst.Copy_(src)
			src.MustDrop()
			dst.MustDrop()
		}
		if dLp != nil {
			// d logits = −dLp·softmax, then + dLp at the target.
			d := dLp.MustNarrow(0, i, n, false).MustUnsqueeze(1, true) // [n, 1]
			grad := logits.MustSub(lse, true)
			grad.MustExp_()
			nd := d.MustNeg(false)
			grad.MustMul_(nd)
			nd.MustDrop()
			grad.MustScatterAdd_(1, tc, d)
			d.MustDrop()
			gc := grad
			if gc.DType() != p.h.DType() {
				gc = grad.MustTotype(p.h.DType(), false)
			}
			dh := gc.MustMm(wc, false) // [n, D]
			dst := g.Hidden.MustNarrow(0, i, n, false)
			dst.Copy_(dh)
			dst.MustDrop()
			dh.MustDrop()
			if g.Weight != nil {
				gt := gc.MustTranspose(0, 1, false)
				hf := hc
				if hc.DType() != p.ct {
					hf = hc.MustTotype(p.ct, false)
				}
				if gt.DType() != p.ct {
					gt = gt.MustTotype(p.ct, true)
				}
				g.Weight.MustAddmm_(gt, hf)
				gt.MustDrop()
				if hf != hc {
					hf.MustDrop()
				}
			}
			if gc != grad {
				gc.MustDrop()
			}
			grad.MustDrop()
		} else {
			logits.MustDrop()
			lse.MustDrop()
		}
		lpc.MustDrop()
		tc.MustDrop()
		hc.MustDrop()
	}
	if g != nil {
		g.Hidden = g.Hidden.MustView(p.shape, true)
	}
	return lp, g
}

// backwardWith runs one backward pass from outs[i] with incoming gradients
// grads[i] — torch.autograd.backward(outs, grads) — as the backward of
// Σ_i sum(outs[i] ∘ grads[i]), whose gradient with respect to outs[i] is
// grads[i] exactly. Gradients accumulate into the leaves' .grad.
func backwardWith(outs, grads []*ts.Tensor) error {
	if len(outs) != len(grads) || len(outs) == 0 {
		return fmt.Errorf("train: backward: %d outputs and %d gradients", len(outs), len(grads))
	}
	var total *ts.Tensor
	for i, o := range outs {
		g := grads[i].MustDetach(false)
		if g.DType() != o.DType() {
			g = g.MustTotype(o.DType(), true)
		}
		s := o.MustMul(g, false).MustSum(o.DType(), true)
		g.MustDrop()
		if s.DType() != gotch.Double {
			s = s.MustTotype(gotch.Float, true)
		}
		if total == nil {
			total = s
		} else {
			total = total.MustAdd(s, true)
			s.MustDrop()
		}
	}
	defer total.MustDrop()
	return total.Backward()
}
