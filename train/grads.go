package train

import (
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// stepGrads collects one optimizer step's gradients. Parameters stored in
// a lower precision (bf16 on CUDA) have their gradient moved after every
// micro-batch into an fp32 sum, so accumulation (and the data-parallel
// all-reduce) happens in fp32. A parameter that no micro-batch reached (a
// Mixtral expert no token was routed to) has no gradient for the step, as
// with PyTorch's zero_grad(set_to_none=True): libtorch's in-place gradient
// accumulation bumps the gradient's version counter, so an unchanged
// version means nothing arrived. The version is tensor metadata, read
// without a device round-trip.
type stepGrads struct {
	params  []Param
	acc     []*ts.Tensor // fp32 sums of low-precision parameters' gradients
	got     []bool       // a gradient arrived this step
	version []int64      // the gradient's version at the last look; -1: undefined
}

func newStepGrads(params []Param) *stepGrads {
	g := &stepGrads{params: params, acc: make([]*ts.Tensor, len(params)), got: make([]bool, len(params)), version: make([]int64, len(params))}
	g.reset()
	return g
}

func gradVersion(p *ts.Tensor) int64 {
	gr := p.MustGrad(false)
	defer gr.MustDrop()
	if !gr.MustDefined() {
		return -1
	}
	return gr.Must_Version(false)
}

// release frees the fp32 sums. It reads nothing of the parameters, which
// may be gone by then (an Export that merges LoRA frees the adapters).
func (g *stepGrads) release() {
	for i := range g.acc {
		if g.acc[i] != nil {
			g.acc[i].MustDrop()
			g.acc[i] = nil
		}
	}
}

// reset forgets the step: call after the parameters' gradients are zeroed.
func (g *stepGrads) reset() {
	for i, p := range g.params {
		if g.acc[i] != nil {
			g.acc[i].MustDrop()
			g.acc[i] = nil
		}
		g.got[i] = false
		g.version[i] = gradVersion(p.T)
	}
}

// collect notes which parameters got a gradient from the micro-batch just
// run and moves low-precision gradients into their fp32 sums.
func (g *stepGrads) collect() {
	for i, p := range g.params {
		v := gradVersion(p.T)
		if v < 0 || v == g.version[i] {
			continue
		}
		g.got[i] = true
		if p.T.DType() != gotch.Float {
			gr := p.T.MustGrad(false)
			f := gr.MustTotype(gotch.Float, false)
			if g.acc[i] == nil {
				g.acc[i] = f
			} else {
				g.acc[i].MustAdd_(f)
				f.MustDrop()
			}
			gr.MustZero_()
			gr.MustDrop()
			v = gradVersion(p.T)
		}
		g.version[i] = v
	}
}

// grads returns, per parameter, the step's gradient (its fp32 sum, or the
// parameter's own fp32 gradient), nil where none arrived. The tensors are
// owned by the caller; an fp32 parameter's shares storage with its .grad.
func (g *stepGrads) grads() []*ts.Tensor {
	out := make([]*ts.Tensor, len(g.params))
	for i, p := range g.params {
		switch {
		case !g.got[i]:
		case g.acc[i] != nil:
			out[i] = g.acc[i].MustShallowClone()
		default:
			out[i] = p.T.MustGrad(false)
		}
	}
	return out
}

func dropAll(ts []*ts.Tensor) {
	for _, t := range ts {
		if t != nil {
			t.MustDrop()
		}
	}
}
