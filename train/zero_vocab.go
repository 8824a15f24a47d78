package train

import (
	"fmt"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Stage 3's embedding and LM head. They are the model's largest tensors
// ([vocab, hidden] each: 28% of a 58M-parameter Llama with a 32,000-token
// vocabulary), so gathering either whole, as the decoder layers are, would
// put a rank's peak at 1/world of the model plus the whole head. Neither
// is ever whole here:
//
//   - the embedding gathers only the rows the step's tokens use, on every
//     rank the union over all ranks' micro-batches (one all-reduce of a
//     vocabulary-sized presence vector), as one compact [rows, hidden]
//     table; its backward sums the compact gradient over the ranks and
//     each rank adds its part into its fp32 gradient piece;
//   - the head walks the vocabulary in chunks of vocabChunkRows rows, each
//     gathered (a broadcast from each rank owning part of it), used for
//     every token's logits of those rows and freed: the forward keeps a
//     running log-sum-exp per token, the backward recomputes each chunk's
//     logits from it and reduces the chunk's weight gradient at once.
//
// So the rank's peak over its 1/world pieces is the largest decoder layer
// (weights and gradients), a head chunk of at most as many elements, or
// the step's used embedding rows.

// vocabParams reports stage 3's vocabulary-sharded parameters: indexes into
// z.params of the embedding and the LM head, -1 where it is not trained
// (then it is whole on every rank) or stage 3 is off.
func (z *zeroOptimizer) vocabParams() (embed, head int) {
	embed, head = -1, -1
	if z.stage != 3 {
		return
	}
	for i, p := range z.params {
		switch p.Name {
		case "model.embed_tokens.weight":
			embed = i
		case "lm_head.weight":
			head = i
		}
	}
	return
}

// vocabChunkRows is the head chunk's row count: as many [hidden] rows as
// the largest other unit has elements (so a chunk adds nothing to the
// peak a decoder layer sets), at least 1, at most the vocabulary.
func vocabChunkRows(vocab, hidden, largestUnit int64) int64 {
	return max(1, min(vocab, largestUnit/max(1, hidden)))
}

// zeroVocab is the optimizer sharding m's embedding or LM head by
// vocabulary (ZeRO stage 3), nil when none is.
func (m *Model) zeroVocab() *zeroOptimizer {
	if z, ok := m.units.(*zeroOptimizer); ok && (z.embedP >= 0 || z.headP >= 0) {
		return z
	}
	return nil
}

// gatherRange returns elements [a, a+n) of sharded parameter i, flattened,
// in its dtype: each rank owning part of the range broadcasts it.
func (z *zeroOptimizer) gatherRange(i int, a, n int64) (*ts.Tensor, error) {
	p := z.params[i].T
	out := ts.MustZeros([]int64{n}, p.DType(), p.MustDevice())
	for r := range z.world {
		for k, pc := range z.pieces[r] {
			if pc.param != i {
				continue
			}
			lo, hi := max(a, pc.start), min(a+n, pc.start+pc.n)
			if lo >= hi {
				continue
			}
			v := out.MustNarrow(0, lo-a, hi-lo, false)
			if r == z.rank {
				src := z.wshard[k].MustNarrow(0, lo-pc.start, hi-lo, false)
				v.Copy_(src)
				src.MustDrop()
			}
			var err error
			if z.world > 1 {
				err = z.comm.Broadcast([]*ts.Tensor{v}, r)
			}
			v.MustDrop()
			if err != nil {
				out.MustDrop()
				return nil, fmt.Errorf("train: ZeRO-3 gathering %s[%d:%d] from rank %d: %w", z.params[i].Name, lo, hi, r, err)
			}
		}
	}
	return out, nil
}

// addGrad sums g (fp32, flattened elements idx of parameter i, or
// [a, a+len) when idx is nil) over the ranks and adds this rank's part into
// its gradient sum.
func (z *zeroOptimizer) addGrad(i int, g, idx *ts.Tensor, a int64) error {
	if z.world > 1 {
		if err := z.comm.AllReduceSum([]*ts.Tensor{g}); err != nil {
			return fmt.Errorf("train: ZeRO gradient reduction of %s: %w", z.params[i].Name, err)
		}
	}
	z.has[i] = true
	n := g.Numel()
	for k, pc := range z.pieces[z.rank] {
		if pc.param != i {
			continue
		}
		dst := z.stateDevice(z.params[i])
		if z.gacc[k] == nil {
			z.gacc[k] = ts.MustZeros([]int64{pc.n}, gotch.Float, dst)
		}
		if idx == nil {
			lo, hi := max(a, pc.start), min(a+int64(n), pc.start+pc.n)
			if lo >= hi {
				continue
			}
			src := g.MustNarrow(0, lo-a, hi-lo, false).MustTo(dst, true)
			acc := z.gacc[k].MustNarrow(0, lo-pc.start, hi-lo, false)
			acc.MustAdd_(src)
			acc.MustDrop()
			src.MustDrop()
			continue
		}
		pos, local := ownedElems(idx, pc)
		if pos == nil {
			continue
		}
		src := g.MustIndexSelect(0, pos, false).MustTo(dst, true)
		local = local.MustTo(dst, true)
		z.gacc[k].MustIndexAdd_(0, local, src)
		src.MustDrop()
		local.MustDrop()
		pos.MustDrop()
	}
	return nil
}

// ownedElems returns the positions in idx (flat element indexes, int64) of
// the elements piece pc holds, and those elements' offsets in the piece;
// nil when it holds none.
func ownedElems(idx *ts.Tensor, pc zeroPiece) (pos, local *ts.Tensor) {
	lo := idx.MustGe(ts.IntScalar(pc.start), false)
	hi := idx.MustLt(ts.IntScalar(pc.start+pc.n), false)
	lo.MustLogicalAnd_(hi)
	hi.MustDrop()
	pos = lo.MustNonzero(true).MustView([]int64{-1}, true)
	if pos.Numel() == 0 {
		pos.MustDrop()
		return nil, nil
	}
	local = idx.MustIndexSelect(0, pos, false).MustSubScalar(ts.IntScalar(pc.start), true)
	return pos, local
}

// usedRows returns the vocabulary rows any rank's ids use (sorted, int64,
// [U]) and ids remapped to positions in it.
func (z *zeroOptimizer) usedRows(ids *ts.Tensor, vocab int64) (rows, remapped *ts.Tensor, err error) {
	dev := ids.MustDevice()
	flat := ids.MustReshape([]int64{-1}, false)
	defer flat.MustDrop()
	present := ts.MustZeros([]int64{vocab}, gotch.Float, dev)
	defer present.MustDrop()
	present.MustIndexFill_(0, flat, ts.FloatScalar(1))
	if z.world > 1 {
		if err := z.comm.AllReduceSum([]*ts.Tensor{present}); err != nil {
			return nil, nil, fmt.Errorf("train: ZeRO-3 embedding rows: %w", err)
		}
	}
	rows = present.MustGt(ts.FloatScalar(0), false).MustNonzero(true).MustView([]int64{-1}, true)
	lookup := ts.MustZeros([]int64{vocab}, gotch.Int64, dev)
	pos := ts.MustArange(ts.IntScalar(int64(rows.Numel())), gotch.Int64, dev)
	lookup.MustIndexCopy_(0, rows, pos)
	pos.MustDrop()
	remapped = lookup.MustIndexSelect(0, flat, true).MustView(ids.MustSize(), true)
	return rows, remapped, nil
}

// rowElems is the flat element indexes of rows of a [*, hidden] matrix.
func rowElems(rows *ts.Tensor, hidden int64) *ts.Tensor {
	col := ts.MustArange(ts.IntScalar(hidden), gotch.Int64, rows.MustDevice())
	e := rows.MustMulScalar(ts.IntScalar(hidden), false).MustUnsqueeze(1, true).MustAdd(col, true)
	col.MustDrop()
	return e.MustView([]int64{-1}, true)
}

// embedForward is the embedding of ids from the compact table of the rows
// the step uses (no autograd).
func (z *zeroOptimizer) embedForward(ids *ts.Tensor) (*ts.Tensor, error) {
	var x *ts.Tensor
	var err error
	torchx.NoGrad(func() {
		V, D := z.shape[z.embedP][0], z.shape[z.embedP][1]
		var rows, rid *ts.Tensor
		if rows, rid, err = z.usedRows(ids, V); err != nil {
			return
		}
		defer rows.MustDrop()
		defer rid.MustDrop()
		idx := rowElems(rows, D)
		defer idx.MustDrop()
		p := z.params[z.embedP].T
		table := ts.MustZeros([]int64{int64(idx.Numel())}, p.DType(), p.MustDevice())
		defer table.MustDrop()
		for k, pc := range z.pieces[z.rank] {
			if pc.param != z.embedP {
				continue
			}
			if pos, local := ownedElems(idx, pc); pos != nil {
				src := z.wshard[k].MustIndexSelect(0, local, false)
				table.MustIndexCopy_(0, pos, src)
				src.MustDrop()
				pos.MustDrop()
				local.MustDrop()
			}
		}
		if z.world > 1 {
			// Every element is held by exactly one rank: the sum is the
			// gather.
			if err = z.comm.AllReduceSum([]*ts.Tensor{table}); err != nil {
				err = fmt.Errorf("train: ZeRO-3 gathering the embedding rows: %w", err)
				return
			}
		}
		t2 := table.MustView([]int64{int64(rows.Numel()), D}, false)
		x = ts.MustEmbedding(t2, rid, -1, false, false)
		t2.MustDrop()
	})
	return x, err
}

// embedBackward adds the embedding's gradient for output gradient dy (the
// rows the step used, summed over the ranks) into this rank's sums.
func (z *zeroOptimizer) embedBackward(ids, dy *ts.Tensor) error {
	var err error
	torchx.NoGrad(func() {
		V, D := z.shape[z.embedP][0], z.shape[z.embedP][1]
		var rows, rid *ts.Tensor
		if rows, rid, err = z.usedRows(ids, V); err != nil {
			return
		}
		defer rows.MustDrop()
		defer rid.MustDrop()
		g := ts.MustZeros([]int64{int64(rows.Numel()), D}, gotch.Float, dy.MustDevice())
		defer g.MustDrop()
		src := dy.MustReshape([]int64{-1, D}, false).MustTotype(gotch.Float, true)
		flat := rid.MustReshape([]int64{-1}, false)
		g.MustIndexAdd_(0, flat, src)
		src.MustDrop()
		flat.MustDrop()
		idx := rowElems(rows, D)
		defer idx.MustDrop()
		gf := g.MustView([]int64{-1}, false)
		defer gf.MustDrop()
		err = z.addGrad(z.embedP, gf, idx, 0)
	})
	return err
}

// headChunk is one gathered chunk of the LM head: rows [r0, r0+n).
type headChunk struct {
	r0, n int64
	w     *ts.Tensor // [n, D] in the hidden states' dtype
}

// headChunks calls fn with each gathered chunk of the head, in order,
// freeing it after.
func (z *zeroOptimizer) headChunks(like gotch.DType, fn func(c headChunk) error) error {
	V, D := z.shape[z.headP][0], z.shape[z.headP][1]
	rows := z.vocabRows
	for r0 := int64(0); r0 < V; r0 += rows {
		n := min(rows, V-r0)
		flat, err := z.gatherRange(z.headP, r0*D, n*D)
		if err != nil {
			return err
		}
		w := flat.MustView([]int64{n, D}, true)
		if w.DType() != like {
			w = w.MustTotype(like, true)
		}
		err = fn(headChunk{r0: r0, n: n, w: w})
		w.MustDrop()
		if err != nil {
			return err
		}
	}
	return nil
}

// headChunkTargets returns, for targets tgt ([n] int64), whether each falls
// in chunk c and its column there (0 when it does not).
func headChunkTargets(tgt *ts.Tensor, c headChunk) (in, col *ts.Tensor) {
	lo := tgt.MustGe(ts.IntScalar(c.r0), false)
	hi := tgt.MustLt(ts.IntScalar(c.r0+c.n), false)
	lo.MustLogicalAnd_(hi)
	hi.MustDrop()
	col = tgt.MustSubScalar(ts.IntScalar(c.r0), false).MustClamp(ts.IntScalar(0), ts.IntScalar(c.n-1), true)
	return lo, col.MustUnsqueeze(1, true)
}

// headInput is Head.prepare's flattening for the sharded head (its
// weight stands in as a [V, D] view of one element, for the checks).
func (z *zeroOptimizer) headInput(hidden, targets *ts.Tensor) (*headInput, error) {
	one := ts.MustZeros([]int64{1, 1}, hidden.DType(), gotch.CPU)
	h := &Head{W: one.MustExpand(z.shape[z.headP], false, false)}
	defer one.MustDrop()
	defer h.W.MustDrop()
	return h.prepare(hidden, targets)
}

// headForward is Head.TokenLogProbs over the vocabulary-sharded head; it
// also returns each token's log-sum-exp ([N], the compute dtype) for
// headBackward.
func (z *zeroOptimizer) headForward(hidden, targets *ts.Tensor) (lp, lse *ts.Tensor, err error) {
	p, err := z.headInput(hidden, targets)
	if err != nil {
		return nil, nil, err
	}
	defer p.drop()
	torchx.NoGrad(func() {
		dev := p.h.MustDevice()
		mx := ts.MustFull([]int64{p.n}, ts.FloatScalar(-1e30), p.ct, dev) // running max
		se := ts.MustZeros([]int64{p.n}, p.ct, dev)                       // Σ exp(logit − max)
		picked := ts.MustZeros([]int64{p.n}, p.ct, dev)
		err = z.headChunks(p.h.DType(), func(c headChunk) error {
			step := max(1, headChunkElems/c.n)
			for i := int64(0); i < p.n; i += step {
				n := min(step, p.n-i)
				hc := p.h.MustNarrow(0, i, n, false)
				logits := ts.MustLinear(hc, c.w, ts.None)
				hc.MustDrop()
				if logits.DType() != p.ct {
					logits = logits.MustTotype(p.ct, true)
				}
				m0 := mx.MustNarrow(0, i, n, false)
				s0 := se.MustNarrow(0, i, n, false)
				cm := logits.MustAmax([]int64{1}, false, false)
				m1 := m0.MustMaximum(cm, false)
				cm.MustDrop()
				// s ← s·exp(m0 − m1) + Σ exp(logits − m1)
				scale := m0.MustSub(m1, false).MustExp(true)
				s0.MustMul_(scale)
				scale.MustDrop()
				m1u := m1.MustUnsqueeze(1, false)
				e := logits.MustSub(m1u, false).MustExp(true).MustSumDimIntlist([]int64{1}, false, p.ct, true)
				m1u.MustDrop()
				s0.MustAdd_(e)
				e.MustDrop()
				m0.Copy_(m1)
				m1.MustDrop()
				m0.MustDrop()
				s0.MustDrop()
				tc := p.tgt.MustNarrow(0, i, n, false)
				in, col := headChunkTargets(tc, c)
				tc.MustDrop()
				got := logits.MustGather(1, col, false, true).MustView([]int64{n}, true)
				col.MustDrop()
				got = got.MustMul(in, true)
				in.MustDrop()
				pk := picked.MustNarrow(0, i, n, false)
				pk.MustAdd_(got)
				pk.MustDrop()
				got.MustDrop()
			}
			return nil
		})
		if err != nil {
			mx.MustDrop()
			se.MustDrop()
			picked.MustDrop()
			return
		}
		lse = se.MustLog(true).MustAdd(mx, true)
		mx.MustDrop()
		lp = picked.MustSub(lse, true).MustMul(p.valid, true).MustView(p.lead, true)
	})
	return lp, lse, err
}

// headBackward is Head.TokenLogProbsBackward over the vocabulary-sharded
// head, from headForward's log-sum-exp: it returns the gradient with
// respect to hidden and reduces the head's weight gradient chunk by chunk
// into the ranks' sums (dLogProbs nil: zero, the reductions still run, as
// on every rank).
func (z *zeroOptimizer) headBackward(hidden, targets, dLogProbs, lse *ts.Tensor) (*ts.Tensor, error) {
	D := z.shape[z.headP][1]
	p, err := z.headInput(hidden, targets)
	if err != nil {
		return nil, err
	}
	defer p.drop()
	var dh *ts.Tensor
	torchx.NoGrad(func() {
		dev := p.h.MustDevice()
		var d *ts.Tensor
		if dLogProbs != nil {
			d = dLogProbs.MustTotype(p.ct, false).MustReshape([]int64{-1}, true).MustMul(p.valid, true)
		} else {
			d = ts.MustZeros([]int64{p.n}, p.ct, dev)
		}
		defer d.MustDrop()
		dh = ts.MustZeros([]int64{p.n, D}, p.h.DType(), dev)
		err = z.headChunks(p.h.DType(), func(c headChunk) error {
			dw := ts.MustZeros([]int64{c.n, D}, p.ct, dev)
			defer dw.MustDrop()
			step := max(1, headChunkElems/c.n)
			for i := int64(0); i < p.n; i += step {
				n := min(step, p.n-i)
				hc := p.h.MustNarrow(0, i, n, false)
				logits := ts.MustLinear(hc, c.w, ts.None)
				if logits.DType() != p.ct {
					logits = logits.MustTotype(p.ct, true)
				}
				l := lse.MustNarrow(0, i, n, false).MustUnsqueeze(1, true)
				dc := d.MustNarrow(0, i, n, false)
				// d logits = −d·softmax, plus d at the target.
				grad := logits.MustSub(l, true)
				l.MustDrop()
				grad.MustExp_()
				nd := dc.MustNeg(false).MustUnsqueeze(1, true)
				grad.MustMul_(nd)
				nd.MustDrop()
				tc := p.tgt.MustNarrow(0, i, n, false)
				in, col := headChunkTargets(tc, c)
				tc.MustDrop()
				at := dc.MustMul(in, false).MustUnsqueeze(1, true)
				in.MustDrop()
				grad.MustScatterAdd_(1, col, at)
				at.MustDrop()
				col.MustDrop()
				dc.MustDrop()
				gc := grad
				if gc.DType() != p.h.DType() {
					gc = grad.MustTotype(p.h.DType(), false)
				}
				part := gc.MustMm(c.w, false)
				dst := dh.MustNarrow(0, i, n, false)
				dst.MustAdd_(part)
				dst.MustDrop()
				part.MustDrop()
				gt := grad.MustTranspose(0, 1, false)
				hf := hc
				if hc.DType() != p.ct {
					hf = hc.MustTotype(p.ct, false)
				}
				dw.MustAddmm_(gt, hf)
				gt.MustDrop()
				if hf != hc {
					hf.MustDrop()
				}
				if gc != grad {
					gc.MustDrop()
				}
				grad.MustDrop()
				hc.MustDrop()
			}
			flat := dw.MustView([]int64{-1}, false)
			if flat.DType() != gotch.Float {
				flat = flat.MustTotype(gotch.Float, true)
			}
			defer flat.MustDrop()
			return z.addGrad(z.headP, flat, nil, c.r0*D)
		})
		dh = dh.MustView(p.shape, true)
	})
	if err != nil {
		dh.MustDrop()
		return nil, err
	}
	return dh, nil
}

// embedTokens is the embedding of ids without autograd: from the rows the
// step uses under ZeRO-3's vocabulary sharding, else from the embedding
// (gathered around the lookup when a unit gatherer shards it).
func (m *Model) embedTokens(ids *ts.Tensor) (*ts.Tensor, error) {
	if z := m.zeroVocab(); z != nil && z.embedP >= 0 {
		return z.embedForward(ids)
	}
	if err := m.gatherUnit(embedUnit, false); err != nil {
		return nil, err
	}
	var x *ts.Tensor
	torchx.NoGrad(func() { x = ts.MustEmbedding(m.embed, ids, -1, false, false) })
	if err := m.releaseUnit(embedUnit, false); err != nil {
		x.MustDrop()
		return nil, err
	}
	return x, nil
}

// zeroHeadBackward is the head's backward under ZeRO-3's vocabulary
// sharding: the gradient reaches the normed hidden states, and the final
// norm through one backward; the head weight's went into the ranks' sums.
func (t *tape) zeroHeadBackward(z *zeroOptimizer, dlp *ts.Tensor) error {
	if dlp != nil {
		defer dlp.MustDrop()
	}
	nd := t.normed.MustDetach(false)
	g, err := z.headBackward(nd, t.targets, dlp, t.lse)
	nd.MustDrop()
	if err != nil {
		return err
	}
	defer g.MustDrop()
	if err := backwardWith([]*ts.Tensor{t.normed}, []*ts.Tensor{g}); err != nil {
		return fmt.Errorf("train: backward of the final norm: %w", err)
	}
	return nil
}
