package train

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// The layers a decoder is built from, each a small type with a Forward
// (the shape of ollama's ml/nn). A layer's tensors carry `hf` tags naming
// them under the layer's Hugging Face module path; bind.go walks them.

// projection is a linear map of the last dimension: a Linear, or a Linear
// wrapped by a LoRA adapter.
type projection interface {
	Forward(x *ts.Tensor) *ts.Tensor
}

// Linear is a bias-free projection y = x·Wᵀ (torch.nn.Linear without a
// bias), W [out, in].
type Linear struct {
	Weight  *ts.Tensor `hf:"weight"`
	out, in int64
}

func newLinear(out, in int) *Linear { return &Linear{out: int64(out), in: int64(in)} }

func (l *Linear) shape() []int64 { return []int64{l.out, l.in} }

// Forward returns x·Wᵀ.
func (l *Linear) Forward(x *ts.Tensor) *ts.Tensor { return ts.MustLinear(x, l.Weight, ts.None) }

// RMSNorm is Llama's root-mean-square norm, computed in fp32 as
// transformers' LlamaRMSNorm does, with a learned scale [dim].
type RMSNorm struct {
	Weight *ts.Tensor `hf:"weight"`
	dim    int64
	eps    float64
}

func newRMSNorm(dim int, eps float64) *RMSNorm { return &RMSNorm{dim: int64(dim), eps: eps} }

func (n *RMSNorm) shape() []int64 { return []int64{n.dim} }

// isNorm marks a norm's scale: initialised to ones, never weight-decayed.
func (n *RMSNorm) isNorm() {}

// Forward normalises x; it does not consume x.
func (n *RMSNorm) Forward(x *ts.Tensor) *ts.Tensor { return rmsNorm(x, n.Weight, n.eps) }

func rmsNorm(x, w *ts.Tensor, eps float64) *ts.Tensor {
	xf := x
	if x.DType() != gotch.Float {
		xf = x.MustTotype(gotch.Float, false)
	}
	v := xf.MustSquare(false).MustMeanDim([]int64{-1}, true, gotch.Float, true).MustAddScalar(ts.FloatScalar(eps), true).MustRsqrt(true)
	y := xf.MustMul(v, false)
	v.MustDrop()
	if xf != x {
		xf.MustDrop()
		y = y.MustTotype(x.DType(), true)
	}
	return y.MustMul(w, true)
}

// Embedding maps token ids to rows of W [vocab, dim].
type Embedding struct {
	Weight     *ts.Tensor `hf:"weight"`
	vocab, dim int64
}

func newEmbedding(vocab, dim int) *Embedding { return &Embedding{vocab: int64(vocab), dim: int64(dim)} }

func (e *Embedding) shape() []int64 { return []int64{e.vocab, e.dim} }

// Forward looks the ids up.
func (e *Embedding) Forward(ids *ts.Tensor) *ts.Tensor {
	return ts.MustEmbedding(e.Weight, ids, -1, false, false)
}

// swiGLU is the gated MLP of Llama and of each Mixtral expert:
// down(silu(gate(h)) · up(h)).
func swiGLU(gate, up, down projection, h *ts.Tensor) *ts.Tensor {
	g := gate.Forward(h).MustSilu(true)
	u := up.Forward(h)
	g = g.MustMul(u, true)
	u.MustDrop()
	y := down.Forward(g)
	g.MustDrop()
	return y
}
