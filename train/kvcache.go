package train

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// KVCache holds the keys and values of the tokens a model has seen, so a
// later Forward call processes only new tokens. Its buffers are allocated
// once, for the capacity given to NewKVCacheFor (or grown by doubling when
// a call needs more), in the model's dtype and on its device; each call
// writes its keys, values, key validity and segments in place, and
// attention reads the filled prefix only. A cache belongs to one model and
// one batch; Drop frees it.
type KVCache struct {
	batch    int64
	n        int64        // positions filled
	capacity int64        // positions every buffer holds (or will, once allocated)
	k, v     []*ts.Tensor // per layer [B, KV, capacity, head_dim]
	mask     *ts.Tensor   // [B, capacity] bool, or nil while nothing is padded
	seg      *ts.Tensor   // [B, capacity] int64, or nil without segments
	// keyMask and keySeg are views of the filled prefix of mask and seg,
	// as the last Forward call left them.
	keyMask, keySeg *ts.Tensor
	validHost       []bool  // keyMask on the host, [B, n] flat; nil when keyMask is
	nextPos         []int64 // per row, the rotary position of the next token
}

// NewKVCache returns an empty cache that allocates on first use and grows
// by doubling.
func NewKVCache() *KVCache { return &KVCache{} }

// NewKVCacheFor returns an empty cache whose buffers hold positions
// tokens: prompt plus generated, so decoding never reallocates.
func NewKVCacheFor(positions int) *KVCache { return &KVCache{capacity: int64(positions)} }

// Len is the number of positions cached.
func (c *KVCache) Len() int64 { return c.n }

// Cap is the number of positions the cache holds without reallocating.
func (c *KVCache) Cap() int64 { return c.capacity }

// Drop frees the cached tensors; the cache is empty afterwards.
func (c *KVCache) Drop() {
	for _, t := range append(append(c.k, c.v...), c.mask, c.seg, c.keyMask, c.keySeg) {
		if t != nil {
			t.MustDrop()
		}
	}
	*c = KVCache{}
}

// reserve makes the capacity at least n+T positions; the buffers follow
// when next written.
func (c *KVCache) reserve(T int64) {
	if need := c.n + T; need > c.capacity {
		c.capacity = max(need, 2*c.capacity)
	}
}

// fit returns buf (or a fresh buffer from alloc) holding c.capacity
// positions along dim, with the c.n filled positions copied over when it
// had to be reallocated.
func (c *KVCache) fit(buf *ts.Tensor, dim int64, alloc func(size int64) *ts.Tensor) *ts.Tensor {
	if buf != nil && buf.MustSize()[dim] >= c.capacity {
		return buf
	}
	nb := alloc(c.capacity)
	if buf != nil {
		if c.n > 0 {
			dst := nb.MustNarrow(dim, 0, c.n, false)
			src := buf.MustNarrow(dim, 0, c.n, false)
			dst.Copy_(src)
			dst.MustDrop()
			src.MustDrop()
		}
		buf.MustDrop()
	}
	return nb
}

// write copies src into buf's positions [c.n, c.n+T) along dim and returns
// a view of the filled prefix [0, c.n+T).
func (c *KVCache) write(buf, src *ts.Tensor, dim, T int64) *ts.Tensor {
	dst := buf.MustNarrow(dim, c.n, T, false)
	dst.Copy_(src)
	dst.MustDrop()
	return buf.MustNarrow(dim, 0, c.n+T, false)
}

// append writes layer i's new keys and values k, v [B, KV, T, hd] (it
// consumes them) and returns views of all the layer's keys and values
// [B, KV, n+T, hd].
func (c *KVCache) append(i int, k, v *ts.Tensor, st *fwdState) (*ts.Tensor, *ts.Tensor) {
	for len(c.k) <= i {
		c.k = append(c.k, nil)
		c.v = append(c.v, nil)
	}
	c.reserve(st.seq)
	s := k.MustSize()
	alloc := func(size int64) *ts.Tensor {
		return ts.MustEmpty([]int64{s[0], s[1], size, s[3]}, k.DType(), k.MustDevice())
	}
	c.k[i] = c.fit(c.k[i], 2, alloc)
	c.v[i] = c.fit(c.v[i], 2, alloc)
	ko := c.write(c.k[i], k, 2, st.seq)
	vo := c.write(c.v[i], v, 2, st.seq)
	if !sdpaAvailable() {
		// The explicit attention's batched matmuls are several times
		// slower on the strided views than on a contiguous copy (1.13 on
		// the CPU: 2× the decoding time); SDPA's kernels read the views
		// as they are.
		ko = ko.MustContiguous(true)
		vo = vo.MustContiguous(true)
	}
	k.MustDrop()
	v.MustDrop()
	return ko, vo
}

// extendMask writes the new keys' validity m ([B, T] bool, consumed; nil:
// all valid) and returns the validity of cached + new keys ([B, n+T]), or
// nil while no key was ever padded.
func (c *KVCache) extendMask(m *ts.Tensor, B, T int64, dev gotch.Device) *ts.Tensor {
	// Keys cached before the first padded call were all valid.
	return c.extend(&c.mask, m, B, T, func(shape []int64) *ts.Tensor { return ts.MustOnes(shape, gotch.Bool, dev) })
}

// extendSeg is extendMask for segment ids (nil: segment 0).
func (c *KVCache) extendSeg(s *ts.Tensor, B, T int64, dev gotch.Device) *ts.Tensor {
	return c.extend(&c.seg, s, B, T, func(shape []int64) *ts.Tensor { return ts.MustZeros(shape, gotch.Int64, dev) })
}

// extend writes t ([B, T], consumed; nil: fill's value) after the filled
// keys of the per-key buffer *buf and returns the buffer's keys so far
// ([B, n+T]), or nil while neither holds anything; fill makes the default
// values, also for keys cached before the buffer existed.
func (c *KVCache) extend(buf **ts.Tensor, t *ts.Tensor, B, T int64, fill func(shape []int64) *ts.Tensor) *ts.Tensor {
	if *buf == nil && t == nil {
		return nil
	}
	c.reserve(T)
	*buf = c.fit(*buf, 1, func(size int64) *ts.Tensor { return fill([]int64{B, size}) })
	if t == nil {
		t = fill([]int64{B, T})
	}
	out := c.write(*buf, t, 1, T)
	t.MustDrop()
	return out
}

// commit ends a Forward call: the new positions count as filled.
func (c *KVCache) commit(st *fwdState) {
	for _, t := range []*ts.Tensor{c.keyMask, c.keySeg} {
		if t != nil {
			t.MustDrop()
		}
	}
	c.keyMask, c.keySeg = st.keyMask, st.keySeg
	c.validHost = st.keyValidHost
	c.nextPos = st.nextPos
	c.n += st.seq
	c.batch = st.batch
}

// keyValidity is the key validity of a forward call on the host ([B, n+T]
// flat, n the cache's positions; c may be nil): the cache's, then the new
// keys' from the call's attention mask on the host (maskHost [B, T], nil:
// all valid). It is nil exactly when the call's key mask tensor is: when
// neither the call nor any cached call had a mask. Attention reads it
// instead of copying the mask from the device at every call.
func keyValidity(c *KVCache, maskHost []int64, B, T int64) []bool {
	var past []bool
	var n int64
	if c != nil {
		past, n = c.validHost, c.n
	}
	if past == nil && maskHost == nil {
		return nil
	}
	S := n + T
	out := make([]bool, B*S)
	for b := range B {
		for j := range n {
			out[b*S+j] = past == nil || past[b*n+j]
		}
		for t := range T {
			out[b*S+n+t] = maskHost == nil || maskHost[b*T+t] != 0
		}
	}
	return out
}
