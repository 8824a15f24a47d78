package train

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Attention without the T×S matrix.
//
// Three implementations compute the same masked attention (causal, with
// Mistral's sliding window, padding never attended to, packed segments not
// attending to each other, a query always seeing itself):
//
//   - sdpaAttention calls libtorch's scaled_dot_product_attention (2.0 and
//     later) without a T×S mask: causal calls per row or per packed
//     segment, block masks only where those cannot express the mask.
//     Autograd keeps what the chosen kernel keeps (on CPU, 2.11's flash
//     kernel: the output and the logsumexp; see README.md).
//   - blockAttention is the explicit path in query blocks with autograd:
//     one block's scores exist at a time in forward, but autograd keeps each
//     block's probabilities for backward, over only the keys the block can
//     see (about half of T×S for causal rows).
//   - blockAttentionForward and blockAttentionBackward run without
//     autograd and keep only the output and the per-row logsumexp; backward
//     recomputes each block's probabilities from them (FlashAttention's
//     algorithm, in plain tensor ops). A checkpointed layer uses them in its
//     recompute, so no T×S tensor outlives one query block.
//
// Tensors are in the layout layerForward builds: q [B, H, T, hd] after
// rope, k and v [B, KV, S, hd] with S = past + T; query head h uses key
// head h / (H/KV), as transformers' repeat_kv does.

// attnMask says which keys each query may attend to without holding the
// T×S matrix; block builds the part one query block needs.
type attnMask struct {
	past, T, S int64
	window     int64      // Mistral's sliding window: key j is seen from query i when i − j < window; 0: none
	keyValid   *ts.Tensor // [B, S] bool, false for padding; nil: no padding
	keySeg     *ts.Tensor // [B, S] segment ids of the keys (the queries' are the last T); nil: one sequence per row
	// firstKey[b·T + t] is the first key index a query t of row b can
	// attend to (the first token of its segment); nil: 0. It lets a query
	// block skip the keys no query of it sees.
	firstKey []int64
	B        int64
	// The host copies of keyValid and keySeg (nil when those are),
	// from which sdpaAttention finds each row's segments.
	validHost []bool
	segHost   []int64
}

// newAttnMask describes the mask of one forward call from its state: the
// rules prepare encodes in st.mask, without the [B, 1, 1, T, S] tensor. It
// reads the key mask and segment ids to the host once, to drop what is
// redundant (no padding, one segment per row), so a plain causal batch
// reaches SDPA's causal kernels, and to find each query's first visible
// key. The returned mask holds its own references; free it with drop.
func newAttnMask(st *fwdState, window int64) *attnMask {
	m := &attnMask{past: st.past, T: st.seq, S: st.past + st.seq, window: window, B: st.batch}
	if st.keyMask != nil {
		valid := st.keyValidHost
		all := !slices.Contains(valid, false)
		if !all {
			m.keyValid = st.keyMask.MustShallowClone()
			m.validHost = valid
		}
	}
	if st.keySeg != nil {
		seg := st.keySeg.Int64Values()
		S := m.S
		mixed := false
		for b := range m.B {
			for j := range S {
				if seg[b*S+j] != seg[b*S] {
					mixed = true
				}
			}
		}
		if mixed {
			m.keySeg = st.keySeg.MustShallowClone()
			m.segHost = seg
			m.firstKey = make([]int64, m.B*m.T)
			for b := range m.B {
				first := map[int64]int64{}
				for j := range S {
					s := seg[b*S+j]
					if _, ok := first[s]; !ok {
						first[s] = j
					}
					if j >= m.past {
						m.firstKey[b*m.T+j-m.past] = first[s]
					}
				}
			}
		}
	}
	return m
}

func (m *attnMask) drop() {
	for _, t := range []*ts.Tensor{m.keyValid, m.keySeg} {
		if t != nil {
			t.MustDrop()
		}
	}
}

// causalOnly tells whether the mask is plain causal attention over the
// call's own tokens, which SDPA computes with is_causal and no mask.
func (m *attnMask) causalOnly() bool {
	return m.window == 0 && m.keyValid == nil && m.keySeg == nil && m.past == 0 && m.S == m.T
}

// keyRange is the span [lo, hi) of keys any query of block [t0, t1) may
// see: none after the block's last query (causal), none before the window
// of its first query, none before the first key of its queries' segments.
// A query always sees itself, so the span is never empty.
func (m *attnMask) keyRange(t0, t1 int64) (lo, hi int64) {
	hi = m.past + t1
	if m.window > 0 {
		lo = max(0, m.past+t0-m.window+1)
	}
	if m.firstKey != nil {
		f := hi
		for b := range m.B {
			for t := t0; t < t1; t++ {
				f = min(f, m.firstKey[b*m.T+t])
			}
		}
		lo = max(lo, f)
	}
	return lo, hi
}

// block returns allowed[b, i, j] ([B or 1, n, hi−lo] bool) for the queries
// t0…t1−1 and keys lo…hi−1.
func (m *attnMask) block(t0, t1, lo, hi int64, dev gotch.Device) *ts.Tensor {
	n, sk := t1-t0, hi-lo
	a, b, c, d := ts.IntScalar(m.past+t0), ts.IntScalar(m.past+t1), ts.IntScalar(lo), ts.IntScalar(hi)
	qi := ts.MustArangeStart(a, b, gotch.Int64, dev).MustView([]int64{n, 1}, true)
	kj := ts.MustArangeStart(c, d, gotch.Int64, dev).MustView([]int64{1, sk}, true)
	keepAlive(a, b, c, d)
	defer qi.MustDrop()
	defer kj.MustDrop()
	allowed := kj.MustLeTensor(qi, false)
	if m.window > 0 {
		ws := ts.IntScalar(m.window)
		w := qi.MustSubScalar(ws, false)
		keepAlive(ws)
		in := kj.MustGtTensor(w, false)
		w.MustDrop()
		allowed = allowed.MustLogicalAnd(in, true)
		in.MustDrop()
	}
	allowed = allowed.MustUnsqueeze(0, true) // [1, n, sk]
	if m.keyValid != nil {
		kv := m.keyValid.MustNarrow(1, lo, sk, false).MustUnsqueeze(1, true)
		allowed = allowed.MustLogicalAnd(kv, true)
		kv.MustDrop()
	}
	if m.keySeg != nil {
		qs := m.keySeg.MustNarrow(1, m.past+t0, n, false).MustUnsqueeze(2, true)
		ks := m.keySeg.MustNarrow(1, lo, sk, false).MustUnsqueeze(1, true)
		same := qs.MustEqTensor(ks, true)
		ks.MustDrop()
		allowed = allowed.MustLogicalAnd(same, true)
		same.MustDrop()
	}
	if m.keyValid != nil || m.keySeg != nil {
		diag := kj.MustEqTensor(qi, false)
		allowed = allowed.MustLogicalOr(diag, true)
		diag.MustDrop()
	}
	return allowed
}

// defaultAttnBlock is the query block of the explicit paths when the
// caller passes 0: blocks of about attnBlockElems scores (fp32), at least
// 16 rows.
func defaultAttnBlock(heads, S int64) int64 {
	return max(16, attnBlockElems/max(1, heads*S))
}

const attnBlockElems = 1 << 22

// dims returns the sizes of q [B, H, T, hd] and k [B, KV, S, hd], the
// query heads per key head and the query block (block, or
// defaultAttnBlock when block ≤ 0).
func dims(q, k *ts.Tensor, mask *attnMask, block int64) (B, H, T, hd, KV, rep, blk int64) {
	s := q.MustSize()
	B, H, T, hd = s[0], s[1], s[2], s[3]
	KV = k.MustSize()[1]
	blk = block
	if blk <= 0 {
		blk = defaultAttnBlock(H, mask.S)
	}
	return B, H, T, hd, KV, H / KV, blk
}

// gqaLayout returns q viewed as [B, KV, rep, T, hd], so the rep query heads
// that share a key head sit beside each other.
func gqaLayout(q *ts.Tensor, KV int64) *ts.Tensor {
	s := q.MustSize()
	return q.MustView([]int64{s[0], KV, s[1] / KV, s[2], s[3]}, false)
}

// blockScores returns the masked scores of query block [t0, t1) against
// keys [lo, hi): [B, KV, rep·n, sk] in fp32 with −∞ where not allowed, and
// the scaled query block [B, KV, rep·n, hd] in q's dtype.
func blockScores(q5, k *ts.Tensor, mask *attnMask, scale float64, t0, t1, lo, hi int64) (scores, qb *ts.Tensor) {
	s := q5.MustSize()
	B, KV, rep, hd := s[0], s[1], s[2], s[4]
	n, sk := t1-t0, hi-lo
	sc := ts.FloatScalar(scale)
	qb = q5.MustNarrow(3, t0, n, false).MustMulScalar(sc, true).MustReshape([]int64{B, KV, rep * n, hd}, true)
	keepAlive(sc)
	kb := k.MustNarrow(2, lo, sk, false)
	kt := kb.MustTranspose(2, 3, true)
	scores = qb.MustMatmul(kt, false)
	kt.MustDrop()
	if scores.DType() != gotch.Float {
		scores = scores.MustTotype(gotch.Float, true)
	}
	allowed := mask.block(t0, t1, lo, hi, q5.MustDevice())
	as := allowed.MustSize()
	not := allowed.MustLogicalNot(true).MustView([]int64{as[0], 1, 1, n, sk}, true)
	scores = scores.MustView([]int64{B, KV, rep, n, sk}, true)
	inf := ts.FloatScalar(math.Inf(-1))
	scores.MustMaskedFill_(not, inf)
	keepAlive(inf)
	not.MustDrop()
	scores = scores.MustView([]int64{B, KV, rep * n, sk}, true)
	return scores, qb
}

// blockAttention is attention with autograd, in query blocks of block rows
// (0: defaultAttnBlock): the explicit path where SDPA is missing. It
// returns [B, H, T, hd] in v's dtype and frees none of its inputs.
func blockAttention(q, k, v *ts.Tensor, mask *attnMask, scale float64, block int64) *ts.Tensor {
	B, H, T, hd, KV, rep, block := dims(q, k, mask, block)
	q5 := gqaLayout(q, KV)
	defer q5.MustDrop()
	var outs []*ts.Tensor
	for t0 := int64(0); t0 < T; t0 += block {
		t1 := min(T, t0+block)
		lo, hi := mask.keyRange(t0, t1)
		scores, qb := blockScores(q5, k, mask, scale, t0, t1, lo, hi)
		qb.MustDrop()
		p := scores.MustSoftmax(-1, gotch.Float, true)
		if p.DType() != v.DType() {
			p = p.MustTotype(v.DType(), true)
		}
		vb := v.MustNarrow(2, lo, hi-lo, false)
		o := p.MustMatmul(vb, true).MustView([]int64{B, KV, rep, t1 - t0, hd}, true)
		vb.MustDrop()
		outs = append(outs, o)
	}
	out := ts.MustCat(outs, 3)
	for _, o := range outs {
		o.MustDrop()
	}
	return out.MustView([]int64{B, H, T, hd}, true)
}

// blockAttentionForward computes attention without autograd, in query
// blocks of block rows (0: defaultAttnBlock), keeping only what backward
// needs: out [B, H, T, hd] in v's dtype and the per-row logsumexp of the
// scaled, masked scores, lse [B, H, T] fp32. Inputs are not freed.
//
// Where the linked libtorch has SDPA, attention (the plain path) runs
// SDPA's kernels, which round differently: on 2.11's CPU flash kernel the
// tiny test models' gradients differ from this path's by up to about 2e-6
// of their largest value. A checkpointed layer that must reproduce the
// plain path's gradients to 1e-6 there recomputes attention with SDPA under
// autograd instead (its backward keeps only the output and logsumexp too).
func blockAttentionForward(q, k, v *ts.Tensor, mask *attnMask, scale float64, block int64) (out, lse *ts.Tensor) {
	torchx.NoGrad(func() {
		B, H, T, hd, KV, rep, block := dims(q, k, mask, block)
		dev := q.MustDevice()
		q5 := gqaLayout(q, KV)
		defer q5.MustDrop()
		out = ts.MustEmpty([]int64{B, KV, rep, T, hd}, v.DType(), dev)
		lse = ts.MustEmpty([]int64{B, KV, rep, T}, gotch.Float, dev)
		for t0 := int64(0); t0 < T; t0 += block {
			t1 := min(T, t0+block)
			n := t1 - t0
			lo, hi := mask.keyRange(t0, t1)
			scores, qb := blockScores(q5, k, mask, scale, t0, t1, lo, hi)
			qb.MustDrop()
			l := scores.MustLogsumexp([]int64{-1}, true, false) // [B, KV, rep·n, 1]
			p := scores.MustSub(l, true).MustExp(true)
			if p.DType() != v.DType() {
				p = p.MustTotype(v.DType(), true)
			}
			vb := v.MustNarrow(2, lo, hi-lo, false)
			o := p.MustMatmul(vb, true).MustView([]int64{B, KV, rep, n, hd}, true)
			vb.MustDrop()
			dst := out.MustNarrow(3, t0, n, false)
			dst.Copy_(o)
			dst.MustDrop()
			o.MustDrop()
			l = l.MustView([]int64{B, KV, rep, n}, true)
			dl := lse.MustNarrow(3, t0, n, false)
			dl.Copy_(l)
			dl.MustDrop()
			l.MustDrop()
		}
		out = out.MustView([]int64{B, H, T, hd}, true)
		lse = lse.MustView([]int64{B, H, T}, true)
	})
	return out, lse
}

// blockAttentionBackward returns the gradients of a loss with respect to
// q, k and v given dOut, its gradient with respect to blockAttentionForward's
// out, without autograd. Each query block's probabilities are recomputed
// from lse: P = exp(S − lse); dV += Pᵀ·dO; dP = dO·Vᵀ;
// dS = P ∘ (dP − rowsum(dP ∘ P)); dQ = dS·K·scale; dK += dSᵀ·Q·scale, the
// key-head gradients summing over the query heads that share them.
// dq has q's shape and dtype, dk and dv k's and v's (accumulated in fp32).
// Inputs are not freed. out is not read: a query block holds whole rows
// of keys, so the row sums come from dP ∘ P as in autograd's softmax
// backward (equal to FlashAttention's rowsum(dO ∘ O), rounding as the
// plain path does); it stays in the signature so a key-blocked backward can
// replace this one without changing callers.
func blockAttentionBackward(q, k, v, out, lse, dOut *ts.Tensor, mask *attnMask, scale float64, block int64) (dq, dk, dv *ts.Tensor) {
	torchx.NoGrad(func() {
		B, H, T, hd, KV, rep, block := dims(q, k, mask, block)
		S := k.MustSize()[2]
		dev := q.MustDevice()
		q5 := gqaLayout(q, KV)
		do5 := gqaLayout(dOut, KV)
		l4 := lse.MustView([]int64{B, KV, rep, T}, false)
		defer func() {
			for _, t := range []*ts.Tensor{q5, do5, l4} {
				t.MustDrop()
			}
		}()
		dq = ts.MustEmpty([]int64{B, KV, rep, T, hd}, q.DType(), dev)
		dkAcc := ts.MustZeros([]int64{B, KV, S, hd}, gotch.Float, dev)
		dvAcc := ts.MustZeros([]int64{B, KV, S, hd}, gotch.Float, dev)
		for t0 := int64(0); t0 < T; t0 += block {
			t1 := min(T, t0+block)
			n := t1 - t0
			lo, hi := mask.keyRange(t0, t1)
			sk := hi - lo
			scores, qb := blockScores(q5, k, mask, scale, t0, t1, lo, hi)
			lb := l4.MustNarrow(3, t0, n, false).MustReshape([]int64{B, KV, rep * n, 1}, true)
			p := scores.MustSub(lb, true).MustExp(true) // fp32 [B, KV, rep·n, sk]
			lb.MustDrop()
			dob := do5.MustNarrow(3, t0, n, false).MustReshape([]int64{B, KV, rep * n, hd}, true)

			// dV += Pᵀ·dO
			pt := p.MustTranspose(2, 3, false)
			dof := asFloat(dob)
			part := pt.MustMatmul(dof, true)
			addInto(dvAcc, part, lo, sk)

			// dS = P ∘ (dO·Vᵀ − rowsum(dO ∘ O))
			vb := v.MustNarrow(2, lo, sk, false)
			vt := vb.MustTranspose(2, 3, true)
			dp := dob.MustMatmul(vt, false)
			vt.MustDrop()
			if dp.DType() != gotch.Float {
				dp = dp.MustTotype(gotch.Float, true)
			}
			// Each block holds whole rows of keys, so rowsum(dP ∘ P) — what
			// autograd's softmax backward computes — is at hand; it equals
			// rowsum(dO ∘ O) and rounds as autograd does.
			d := dp.MustMul(p, false).MustSumDimIntlist([]int64{-1}, true, gotch.Float, true)
			dof.MustDrop()
			ds := dp.MustSub(d, true).MustMul(p, true)
			d.MustDrop()
			p.MustDrop()
			dob.MustDrop()

			// dQ = dS·K·scale
			kb := k.MustNarrow(2, lo, sk, false)
			kf := asFloat(kb)
			sc := ts.FloatScalar(scale)
			dqb := ds.MustMatmul(kf, false).MustMulScalar(sc, true).MustView([]int64{B, KV, rep, n, hd}, true)
			keepAlive(sc)
			kf.MustDrop()
			kb.MustDrop()
			dst := dq.MustNarrow(3, t0, n, false)
			dst.Copy_(dqb)
			dst.MustDrop()
			dqb.MustDrop()

			// dK += dSᵀ·(Q·scale)
			dst2 := ds.MustTranspose(2, 3, true)
			qf := asFloat(qb)
			qb.MustDrop()
			part = dst2.MustMatmul(qf, true)
			qf.MustDrop()
			addInto(dkAcc, part, lo, sk)
			vb.MustDrop()
		}
		dq = dq.MustView([]int64{B, H, T, hd}, true)
		dk = dkAcc.MustTotype(k.DType(), true)
		dv = dvAcc.MustTotype(v.DType(), true)
	})
	return dq, dk, dv
}

// keepAlive keeps scalars alive up to here. gotch frees a Scalar's C
// value from a finalizer and hands libtorch only the C pointer, so without
// this the garbage collector may free a scalar while libtorch still reads
// it (seen: masked_fill on a 16,384² tensor, which copies the tensor
// before reading the scalar, failed in c10::Scalar::toFloat).
func keepAlive(s ...*ts.Scalar) { runtime.KeepAlive(s) }

// asFloat returns t in fp32: t itself as a new handle when it is already.
func asFloat(t *ts.Tensor) *ts.Tensor {
	if t.DType() == gotch.Float {
		return t.MustShallowClone()
	}
	return t.MustTotype(gotch.Float, false)
}

// addInto adds part ([B, KV, sk, hd]) into acc's keys lo…lo+sk−1 and frees
// part.
func addInto(acc, part *ts.Tensor, lo, sk int64) {
	dst := acc.MustNarrow(2, lo, sk, false)
	dst.MustAdd_(part)
	dst.MustDrop()
	part.MustDrop()
}

// sdpaUnavailable is the error text setup's stubs return for functions the
// linked libtorch lacks.
const sdpaUnavailable = "not available in the linked libtorch"

var (
	sdpaOnce sync.Once
	sdpaOK   bool
	sdpaErr  error
)

// sdpaAvailable tells whether the linked libtorch has
// scaled_dot_product_attention. It calls it once on a tiny input: the
// stub that setup builds for libtorch 1.13 answers with an error saying
// the function is not available.
func sdpaAvailable() bool {
	sdpaOnce.Do(func() {
		torchx.NoGrad(func() {
			x := ts.MustZeros([]int64{1, 1, 2, 2}, gotch.Float, gotch.CPU)
			defer x.MustDrop()
			y, err := sdpaCall(x, x, x, nil, false, 1)
			switch {
			case err == nil:
				y.MustDrop()
				sdpaOK = true
			case strings.Contains(err.Error(), sdpaUnavailable):
				sdpaErr = err
			default:
				sdpaErr = fmt.Errorf("train: probing scaled_dot_product_attention: %w", err)
			}
		})
	})
	return sdpaOK
}

// span is a run of tokens [a, e) of one row: one packed segment, or
// padding.
type span struct {
	a, e int64
	pad  bool
}

// segments splits each row into its packed segments and its padding when
// the mask is exactly "causal within each segment, padding sees only
// itself": every segment one contiguous run of real tokens (an id that
// comes back later in the row attends across the gap), padding in runs
// whose segment id no real token of the row has. ok is false otherwise,
// and for calls with a cache.
func (m *attnMask) segments() (rows [][]span, ok bool) {
	if m.past != 0 {
		return nil, false
	}
	T := m.T
	rows = make([][]span, m.B)
	for b := range m.B {
		valid := func(t int64) bool { return m.validHost == nil || m.validHost[b*T+t] }
		seg := func(t int64) int64 {
			if m.segHost == nil {
				return 0
			}
			return m.segHost[b*T+t]
		}
		seen := map[int64]bool{}
		for a := int64(0); a < T; {
			e := a + 1
			for e < T && seg(e) == seg(a) && valid(e) == valid(a) {
				e++
			}
			if seen[seg(a)] {
				return nil, false
			}
			seen[seg(a)] = true
			rows[b] = append(rows[b], span{a: a, e: e, pad: !valid(a)})
			a = e
		}
	}
	return rows, true
}

// sdpaAttention computes attention with scaled_dot_product_attention and
// no T×S mask:
//
//   - a plain causal mask: one is_causal call;
//   - packed segments and padding (segments): one is_causal call per
//     segment (with window blocks inside a segment longer than the
//     window), and padding, which sees only itself, copied from v;
//   - otherwise (an id that returns in a row, padding without segments, a
//     cache): one call per query block of block rows (0: defaultAttnBlock)
//     with a boolean mask over the keys the block can see. libtorch turns
//     these masks into fp32 and keeps them for backward: about T×S/2
//     values per row over the layer, one head's worth, where explicit
//     attention keeps every head's.
//
// Key and value heads are repeated for GQA (the 2.x API gotch wraps has no
// enable_gqa). It returns [B, H, T, hd] and frees none of its inputs.
func sdpaAttention(q, k, v *ts.Tensor, mask *attnMask, scale float64, block int64) (*ts.Tensor, error) {
	B, H, _, hd, KV, rep, block := dims(q, k, mask, block)
	S := k.MustSize()[2]
	ke, ve := k, v
	if rep > 1 {
		ke = k.MustUnsqueeze(2, false).MustExpand([]int64{B, KV, rep, S, hd}, false, true).MustReshape([]int64{B, H, S, hd}, true)
		ve = v.MustUnsqueeze(2, false).MustExpand([]int64{B, KV, rep, S, hd}, false, true).MustReshape([]int64{B, H, S, hd}, true)
		defer ke.MustDrop()
		defer ve.MustDrop()
	}
	if mask.causalOnly() {
		return causalCall(q, ke, ve, scale, block)
	}
	rows, ok := mask.segments()
	if !ok {
		return sdpaBlocks(q, ke, ve, mask, scale, block)
	}
	var outs []*ts.Tensor
	free := func() {
		for _, o := range outs {
			o.MustDrop()
		}
		outs = nil
	}
	var rowOuts []*ts.Tensor
	defer func() {
		free()
		for _, o := range rowOuts {
			o.MustDrop()
		}
	}()
	for b, row := range rows {
		for _, sp := range row {
			n := sp.e - sp.a
			cut := func(x *ts.Tensor) *ts.Tensor {
				return x.MustNarrow(0, int64(b), 1, false).MustNarrow(2, sp.a, n, true)
			}
			vr := cut(ve)
			if sp.pad {
				outs = append(outs, vr)
				continue
			}
			qr, kr := cut(q), cut(ke)
			var o *ts.Tensor
			var err error
			if mask.window == 0 || n <= mask.window {
				o, err = causalCall(qr, kr, vr, scale, block)
			} else {
				sub := &attnMask{T: n, S: n, window: mask.window, B: 1}
				o, err = sdpaBlocks(qr, kr, vr, sub, scale, block)
			}
			for _, t := range []*ts.Tensor{qr, kr, vr} {
				t.MustDrop()
			}
			if err != nil {
				return nil, err
			}
			outs = append(outs, o)
		}
		rowOuts = append(rowOuts, catOrOnly(outs, 2))
		free()
	}
	return catOrOnly(rowOuts, 0), nil
}

// catOrOnly concatenates ts along dim, or returns a new handle of the only
// one.
func catOrOnly(xs []*ts.Tensor, dim int64) *ts.Tensor {
	if len(xs) == 1 {
		return xs[0].MustShallowClone()
	}
	return ts.MustCat(xs, dim)
}

// sdpaCall is one scaled_dot_product_attention call; mask may be nil.
// gotch hands libtorch an undefined tensor for a missing mask, which 2.x's
// SDPA rejects ("Expected attn_mask dtype to be bool or float…"), so a
// missing mask is passed as a single broadcast true ([1, 1, 1, 1]): it
// costs nothing, keeps is_causal, and the CPU flash kernel takes it (the
// math kernel refuses a mask with is_causal; causalCall falls back then).
func sdpaCall(q, k, v, mask *ts.Tensor, causal bool, scale float64) (*ts.Tensor, error) {
	if mask == nil {
		all := ts.MustOnes([]int64{1, 1, 1, 1}, gotch.Bool, q.MustDevice())
		defer all.MustDrop()
		mask = all
	}
	out, err := ts.ScaledDotProductAttention(q, k, v, mask, 0, causal, []float64{scale})
	if err != nil {
		return nil, fmt.Errorf("train: attention: %w", err)
	}
	return out, nil
}

// causalCall is causal attention over q, k, v of one length: one is_causal
// call, or, where the kernel libtorch picks refuses is_causal with the
// placeholder mask, block masks.
func causalCall(q, k, v *ts.Tensor, scale float64, block int64) (*ts.Tensor, error) {
	out, err := sdpaCall(q, k, v, nil, true, scale)
	if err == nil {
		return out, nil
	}
	s := q.MustSize()
	n := s[2]
	return sdpaBlocks(q, k, v, &attnMask{T: n, S: n, B: s[0]}, scale, block)
}

// sdpaBlocks calls SDPA once per query block with a boolean mask over the
// keys the block can see. k and v have q's heads.
func sdpaBlocks(q, k, v *ts.Tensor, mask *attnMask, scale float64, block int64) (*ts.Tensor, error) {
	T := q.MustSize()[2]
	var outs []*ts.Tensor
	defer func() {
		for _, o := range outs {
			o.MustDrop()
		}
	}()
	for t0 := int64(0); t0 < T; t0 += block {
		t1 := min(T, t0+block)
		n := t1 - t0
		lo, hi := mask.keyRange(t0, t1)
		qb := q.MustNarrow(2, t0, n, false)
		kb := k.MustNarrow(2, lo, hi-lo, false)
		vb := v.MustNarrow(2, lo, hi-lo, false)
		allowed := mask.block(t0, t1, lo, hi, q.MustDevice())
		as := allowed.MustSize()
		am := allowed.MustView([]int64{as[0], 1, n, hi - lo}, true)
		o, err := sdpaCall(qb, kb, vb, am, false, scale)
		for _, t := range []*ts.Tensor{qb, kb, vb, am} {
			t.MustDrop()
		}
		if err != nil {
			return nil, err
		}
		outs = append(outs, o)
	}
	return catOrOnly(outs, 2), nil
}

// attention is the differentiable attention of the plain (not
// checkpointed) path: SDPA where the linked libtorch has it, the explicit
// blockwise path otherwise. q [B, H, T, hd], k and v [B, KV, S, hd];
// returns [B, H, T, hd]; frees none of its inputs.
func attention(q, k, v *ts.Tensor, mask *attnMask, scale float64) (*ts.Tensor, error) {
	if sdpaAvailable() {
		return sdpaAttention(q, k, v, mask, scale, 0)
	}
	return blockAttention(q, k, v, mask, scale, 0), nil
}
