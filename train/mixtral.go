package train

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Mixtral: the shared decoder with a sparse mixture of gated-MLP experts
// in every layer, a softmax router picking the top num_experts_per_tok.

func init() {
	register("mixtral", architecture{feedForward: func(c *Config) feedForward { return newSparseMoE(c) }, routed: true})
}

// sparseMoE is MixtralSparseMoeBlock.
type sparseMoE struct {
	Router  projection `hf:"block_sparse_moe.gate"`
	Experts []*expert  `hf:"block_sparse_moe.experts"`

	topK int64
}

// expert is MixtralBlockSparseTop2MLP: w2(silu(w1(h)) · w3(h)).
type expert struct {
	W1 projection `hf:"w1"`
	W2 projection `hf:"w2"`
	W3 projection `hf:"w3"`
}

func newSparseMoE(c *Config) *sparseMoE {
	D, I := c.HiddenSize, c.IntermediateSize
	f := &sparseMoE{Router: newLinear(c.NumLocalExperts, D), topK: int64(c.NumExpertsPerTok)}
	for range c.NumLocalExperts {
		f.Experts = append(f.Experts, &expert{W1: newLinear(I, D), W2: newLinear(D, I), W3: newLinear(I, D)})
	}
	return f
}

// Forward is Mixtral's sparse block: softmax router, top-k experts per
// token with renormalised weights. aux, when not nil, receives the
// load-balancing statistics.
func (f *sparseMoE) Forward(h *ts.Tensor, st *fwdState, aux *moeStats) *ts.Tensor {
	B, T, D := st.batch, st.seq, h.MustSize()[2]
	E, K := int64(len(f.Experts)), f.topK
	N := B * T
	flat := h.MustView([]int64{N, D}, false)
	logits := f.Router.Forward(flat)
	probs := logits.MustSoftmax(-1, gotch.Float, true) // [N, E]
	topW, topI := probs.MustTopk(K, -1, true, true, false)
	wSum := topW.MustSumDimIntlist([]int64{-1}, true, gotch.Float, false)
	topW = topW.MustDiv(wSum, true)
	wSum.MustDrop()

	if aux != nil {
		aux.add(topI, probs, st.valid, E)
	}
	probs.MustDrop()

	// Route on the device: per expert, the (token, slot) pairs that chose
	// it, in token order (what Mixtral's torch.where does). Only the
	// count, a shape, reaches the host; no routing table is copied.
	type route struct{ rows, slots *ts.Tensor }
	routes := make([]route, E)
	for e := range E {
		hit := topI.MustEq(ts.IntScalar(e), false)
		nz := hit.MustNonzero(true) // [n, 2]: token, slot
		if nz.MustSize()[0] == 0 {
			nz.MustDrop()
			continue
		}
		rows := nz.MustSelect(1, 0, false)
		k := nz.MustSelect(1, 1, false)
		slots := rows.MustMulScalar(ts.IntScalar(K), false).MustAdd(k, true)
		k.MustDrop()
		nz.MustDrop()
		routes[e] = route{rows, slots}
	}
	topI.MustDrop()
	wFlat := topW.MustView([]int64{N * K}, true)
	if wFlat.DType() != h.DType() {
		wFlat = wFlat.MustTotype(h.DType(), true)
	}
	out := ts.MustZeros([]int64{N, D}, h.DType(), h.MustDevice())
	for e := range E {
		idx, slot := routes[e].rows, routes[e].slots
		if idx == nil {
			continue
		}
		xe := flat.MustIndexSelect(0, idx, false)
		ex := f.Experts[e]
		ye := swiGLU(ex.W1, ex.W3, ex.W2, xe)
		xe.MustDrop()
		we := wFlat.MustIndexSelect(0, slot, false).MustUnsqueeze(1, true)
		ye = ye.MustMul(we, true)
		we.MustDrop()
		out = out.MustIndexAdd(0, idx, ye, true)
		ye.MustDrop()
		idx.MustDrop()
		slot.MustDrop()
	}
	wFlat.MustDrop()
	flat.MustDrop()
	return out.MustView([]int64{B, T, D}, true)
}

type moeStats struct {
	tokensPerExpert *ts.Tensor // Σ over layers of [k, E] routed shares
	probPerExpert   *ts.Tensor // Σ over layers of [E] mean router probability
}

func (s *moeStats) drop() {
	for _, t := range []*ts.Tensor{s.tokensPerExpert, s.probPerExpert} {
		if t != nil {
			t.MustDrop()
		}
	}
}

func accumulate(sum **ts.Tensor, t *ts.Tensor) {
	if *sum == nil {
		*sum = t
		return
	}
	*sum = (*sum).MustAdd(t, true)
	t.MustDrop()
}

// loss is transformers' load_balancing_loss_func: E · Σ tokens_per_expert ·
// router_prob_per_expert, both averaged over layers and unpadded tokens.
func (s *moeStats) loss(E, L int) *ts.Tensor {
	p := s.probPerExpert.MustUnsqueeze(0, false)
	l := s.tokensPerExpert.MustMul(p, false).MustSum(gotch.Float, true)
	p.MustDrop()
	return l.MustMulScalar(ts.FloatScalar(float64(E)/float64(L*L)), true)
}

// add accumulates one layer's statistics over the unpadded tokens (valid,
// [N] 1/0, nil for all): the share of routing slots and the mean router
// probability per expert.
func (s *moeStats) add(topI, probs, valid *ts.Tensor, E int64) {
	N := probs.MustSize()[0]
	oneHot := topI.MustOneHot(E, false).MustTotype(gotch.Float, true) // [N, K, E]
	var tpe, ppe *ts.Tensor
	if valid != nil {
		n := valid.MustSum(gotch.Float, false)
		w := valid.MustView([]int64{N, 1, 1}, false)
		tpe = oneHot.MustMul(w, true).MustSumDimIntlist([]int64{0}, false, gotch.Float, true).MustDiv(n, true)
		w.MustDrop()
		w = valid.MustView([]int64{N, 1}, false)
		ppe = probs.MustMul(w, false).MustSumDimIntlist([]int64{0}, false, gotch.Float, true).MustDiv(n, true)
		w.MustDrop()
		n.MustDrop()
	} else {
		tpe = oneHot.MustMeanDim([]int64{0}, false, gotch.Float, true)
		ppe = probs.MustMeanDim([]int64{0}, false, gotch.Float, false)
	}
	accumulate(&s.tokensPerExpert, tpe)
	accumulate(&s.probPerExpert, ppe)
}
