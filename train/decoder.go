package train

import (
	"math"

	"github.com/sugarme/gotch/ts"
)

// decoderLayer is one pre-norm transformer block: self-attention and a
// feed-forward block, each behind an RMSNorm and a residual.
type decoderLayer struct {
	InputNorm *RMSNorm       `hf:"input_layernorm"`
	Attn      *selfAttention `hf:"self_attn"`
	PostNorm  *RMSNorm       `hf:"post_attention_layernorm"`
	// FFN names its own modules (mlp.*, block_sparse_moe.*).
	FFN feedForward `hf:""`
}

// feedForward is a layer's MLP block: Llama's gated MLP or Mixtral's
// sparse mixture of experts. Forward does not consume h; aux, when not
// nil, receives the router's statistics.
type feedForward interface {
	Forward(h *ts.Tensor, st *fwdState, aux *moeStats) *ts.Tensor
}

// selfAttention holds the attention projections; the attention itself is
// attention() (attention.go), which the checkpointed backward recomputes.
type selfAttention struct {
	Q projection `hf:"q_proj"`
	K projection `hf:"k_proj"`
	V projection `hf:"v_proj"`
	O projection `hf:"o_proj"`

	heads, kvHeads, headDim int64
}

func newSelfAttention(c *Config) *selfAttention {
	D, H, KV, hd := c.HiddenSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	return &selfAttention{
		Q: newLinear(H*hd, D), K: newLinear(KV*hd, D), V: newLinear(KV*hd, D), O: newLinear(D, H*hd),
		heads: int64(H), kvHeads: int64(KV), headDim: int64(hd),
	}
}

// layerForward runs one decoder layer; it consumes x. The layer is three
// segments — attnInputs, attention, attnOutput — so a checkpointed
// recompute can run the middle one without autograd.
func (m *Model) layerForward(i int, l *decoderLayer, x *ts.Tensor, st *fwdState, aux *moeStats) *ts.Tensor {
	q, k, v := m.attnInputs(i, l, x, st)
	a, err := attention(q, k, v, st.attn, m.attnScale())
	if err != nil {
		// Shapes and devices are the model's own here: an error is a bug
		// or a libtorch failure, as with the Must calls around it.
		panic(err)
	}
	q.MustDrop()
	k.MustDrop()
	v.MustDrop()
	return m.attnOutput(l, x, a, st, aux)
}

func (m *Model) attnScale() float64 { return 1 / math.Sqrt(float64(m.Config.HeadDim)) }

// attnInputs is a layer's first segment: input norm, q/k/v projections and
// rotary embeddings. It returns q [B, H, T, hd] and k, v [B, KV, S, hd]
// (S counts the cache's keys) and does not consume x.
func (m *Model) attnInputs(i int, l *decoderLayer, x *ts.Tensor, st *fwdState) (q, k, v *ts.Tensor) {
	B, T := st.batch, st.seq
	at := l.Attn
	H, KV, hd := at.heads, at.kvHeads, at.headDim
	h := l.InputNorm.Forward(x)
	q = at.Q.Forward(h).MustView([]int64{B, T, H, hd}, true).MustTranspose(1, 2, true)
	k = at.K.Forward(h).MustView([]int64{B, T, KV, hd}, true).MustTranspose(1, 2, true)
	v = at.V.Forward(h).MustView([]int64{B, T, KV, hd}, true).MustTranspose(1, 2, true)
	h.MustDrop()
	q = rope(q, st)
	k = rope(k, st)
	if st.cache != nil {
		k, v = st.cache.append(i, k, v, st)
	}
	return q, k, v
}

// attnOutput is a layer's last segment: output projection of the
// attention a [B, H, T, hd], residual, post-attention norm, feed-forward
// block and residual. It consumes x and a.
func (m *Model) attnOutput(l *decoderLayer, x, a *ts.Tensor, st *fwdState, aux *moeStats) *ts.Tensor {
	B, T := st.batch, st.seq
	at := l.Attn
	a = a.MustTranspose(1, 2, true).MustReshape([]int64{B, T, at.heads * at.headDim}, true)
	o := at.O.Forward(a)
	a.MustDrop()
	x = x.MustAdd(o, true)
	o.MustDrop()

	h := l.PostNorm.Forward(x)
	y := l.FFN.Forward(h, st, aux)
	h.MustDrop()
	x = x.MustAdd(y, true)
	y.MustDrop()
	return x
}

func rope(x *ts.Tensor, st *fwdState) *ts.Tensor {
	half := x.MustSize()[3] / 2
	x1 := x.MustNarrow(3, 0, half, false)
	x2 := x.MustNarrow(3, half, half, false)
	rot := ts.MustCat([]*ts.Tensor{x2, x1}, 3)
	x1.MustDrop()
	x2.MustDrop()
	rot = rot.MustMul(st.sin, true)
	y := x.MustMul(st.cos, true)
	y = y.MustAdd(rot, true)
	rot.MustDrop()
	return y
}
