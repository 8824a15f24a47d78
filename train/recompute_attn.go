package train

import (
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// blockwiseAttentionGrads returns dq, dk, dv of attention q [B, H, T, hd],
// k, v [B, KV, S, hd] given dOut, the gradient of its output, recomputing
// the attention one query block at a time with autograd: each block's
// scores, fused softmax and its backward exist only while that block is
// processed, so no T×S tensor is ever held, and the arithmetic is the
// plain path's (blockAttention's) kernel for kernel: libtorch's fused
// softmax and softmax backward, where blockAttentionBackward rebuilds the
// probabilities from the logsumexp in separate element-wise passes. dq has q's shape and dtype; dk and dv are summed in fp32 and
// returned in k's and v's dtype. Inputs are not freed; grad mode must be
// on.
func blockwiseAttentionGrads(q, k, v, dOut *ts.Tensor, mask *attnMask, scale float64) (dq, dk, dv *ts.Tensor, err error) {
	s := q.MustSize()
	B, H, T, hd := s[0], s[1], s[2], s[3]
	ks := k.MustSize()
	KV, S := ks[1], ks[2]
	rep := H / KV
	block := defaultAttnBlock(H, mask.S)
	dev := q.MustDevice()
	qd := q.MustDetach(false)
	q5 := gqaLayout(qd, KV)
	qd.MustDrop()
	do5 := gqaLayout(dOut, KV)
	defer q5.MustDrop()
	defer do5.MustDrop()
	dq = ts.MustEmpty([]int64{B, KV, rep, T, hd}, q.DType(), dev)
	dkAcc := ts.MustZeros([]int64{B, KV, S, hd}, gotch.Float, dev)
	dvAcc := ts.MustZeros([]int64{B, KV, S, hd}, gotch.Float, dev)
	fail := func(e error) (*ts.Tensor, *ts.Tensor, *ts.Tensor, error) {
		dq.MustDrop()
		dkAcc.MustDrop()
		dvAcc.MustDrop()
		return nil, nil, nil, e
	}
	for t0 := int64(0); t0 < T; t0 += block {
		t1 := min(T, t0+block)
		n := t1 - t0
		lo, hi := mask.keyRange(t0, t1)
		sk := hi - lo
		leaf := func(t *ts.Tensor, dim, start, size int64) *ts.Tensor {
			x := t.MustNarrow(dim, start, size, false).MustDetach(true)
			x.MustRequiresGrad_(true)
			return x
		}
		qb := leaf(q5, 3, t0, n) // [B, KV, rep, n, hd]
		kb := leaf(k, 2, lo, sk)
		vb := leaf(v, 2, lo, sk)
		qs := qb.MustMulScalar(ts.FloatScalar(scale), false).MustReshape([]int64{B, KV, rep * n, hd}, true)
		kt := kb.MustTranspose(2, 3, false)
		scores := qs.MustMatmul(kt, true)
		kt.MustDrop()
		if scores.DType() != gotch.Float {
			scores = scores.MustTotype(gotch.Float, true)
		}
		allowed := mask.block(t0, t1, lo, hi, dev)
		as := allowed.MustSize()
		not := allowed.MustLogicalNot(true).MustView([]int64{as[0], 1, 1, n, sk}, true)
		scores = scores.MustView([]int64{B, KV, rep, n, sk}, true).MustMaskedFill(not, ts.FloatScalar(math.Inf(-1)), true).MustView([]int64{B, KV, rep * n, sk}, true)
		not.MustDrop()
		p := scores.MustSoftmax(-1, gotch.Float, true)
		if p.DType() != vb.DType() {
			p = p.MustTotype(vb.DType(), true)
		}
		ob := p.MustMatmul(vb, true).MustView([]int64{B, KV, rep, n, hd}, true)
		dob := do5.MustNarrow(3, t0, n, false)
		err := backwardWith([]*ts.Tensor{ob}, []*ts.Tensor{dob})
		ob.MustDrop()
		dob.MustDrop()
		if err != nil {
			for _, x := range []*ts.Tensor{qb, kb, vb} {
				x.MustDrop()
			}
			return fail(err)
		}
		if g := gradOf(qb); g != nil {
			dst := dq.MustNarrow(3, t0, n, false)
			dst.Copy_(g)
			dst.MustDrop()
			g.MustDrop()
		}
		if g := gradOf(kb); g != nil {
			addInto(dkAcc, g.MustTotype(gotch.Float, true), lo, sk)
		}
		if g := gradOf(vb); g != nil {
			addInto(dvAcc, g.MustTotype(gotch.Float, true), lo, sk)
		}
		qb.MustDrop()
		kb.MustDrop()
		vb.MustDrop()
	}
	dq = dq.MustView([]int64{B, H, T, hd}, true)
	dk = dkAcc.MustTotype(k.DType(), true)
	dv = dvAcc.MustTotype(v.DType(), true)
	return dq, dk, dv, nil
}
