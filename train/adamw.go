package train

import (
	"fmt"
	"math"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// AdamWConfig holds AdamW's hyper-parameters. The zero value is not useful;
// start from DefaultAdamW.
type AdamWConfig struct {
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64 // decoupled; never applied to parameters marked NoDecay
}

// DefaultAdamW returns PyTorch's AdamW defaults except weight decay 0, the
// usual choice for fine-tuning.
func DefaultAdamW() AdamWConfig {
	return AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// AdamW is the AdamW optimizer (Loshchilov & Hutter) with its state owned by
// pltune so it can be checkpointed: per parameter the first and second
// moment estimates, in fp32, plus an fp32 master copy for parameters stored
// in a lower precision (bf16 compute on CUDA). It updates exactly as
// torch.optim.AdamW does.
type AdamW struct {
	cfg    AdamWConfig
	params []Param
	m, v   []*ts.Tensor // fp32 moments, one per trainable parameter
	master []*ts.Tensor // fp32 copies of non-fp32 parameters; nil entries otherwise
	steps  int          // optimizer steps taken
	// pSteps counts the updates of each parameter (torch's per-parameter
	// state["step"]): a parameter without a gradient in a step is skipped.
	pSteps []int
}

// NewAdamW returns an optimizer over the trainable parameters of params,
// with zeroed state.
func NewAdamW(params []Param, cfg AdamWConfig) (*AdamW, error) {
	o := &AdamW{cfg: cfg}
	for _, p := range params {
		if !p.Trainable {
			continue
		}
		o.params = append(o.params, p)
		zerosM, err := p.T.ZerosLike(false)
		if err != nil {
			return nil, fmt.Errorf("adamw: %s: %w", p.Name, err)
		}
		m := zerosM.MustTotype(gotch.Float, true)
		v := m.MustZerosLike(false)
		o.m = append(o.m, m)
		o.v = append(o.v, v)
		var master *ts.Tensor
		if p.T.DType() != gotch.Float {
			master = p.T.MustDetach(false).MustTotype(gotch.Float, true)
		}
		o.master = append(o.master, master)
		o.pSteps = append(o.pSteps, 0)
	}
	if len(o.params) == 0 {
		return nil, fmt.Errorf("adamw: no trainable parameters")
	}
	return o, nil
}

// Steps is the number of optimizer steps taken.
func (o *AdamW) Steps() int { return o.steps }

// Params are the trainable parameters the optimizer updates, in order.
func (o *AdamW) Params() []Param { return o.params }

// Step applies one update with learning rate lr from the parameters'
// gradients. Parameters without a gradient are left alone (their moments
// and step count too), as PyTorch does.
func (o *AdamW) Step(lr float64) error {
	grads := make([]*ts.Tensor, len(o.params))
	for i, p := range o.params {
		g := p.T.MustGrad(false)
		if !g.MustDefined() {
			g.MustDrop()
			continue
		}
		grads[i] = g
	}
	defer dropAll(grads)
	return o.StepGrads(lr, grads)
}

// StepGrads is Step from the given gradients, one per parameter (Params'
// order, any floating dtype); a nil entry skips that parameter.
func (o *AdamW) StepGrads(lr float64, grads []*ts.Tensor) error {
	if len(grads) != len(o.params) {
		return fmt.Errorf("adamw: %d gradients for %d parameters", len(grads), len(o.params))
	}
	o.steps++
	torchx.NoGrad(func() {
		for i, p := range o.params {
			g := grads[i]
			if g == nil {
				continue
			}
			o.pSteps[i]++
			if g.DType() != gotch.Float {
				g = g.MustTotype(gotch.Float, false)
			} else {
				g = g.MustShallowClone()
			}
			w := p.T
			if o.master[i] != nil {
				w = o.master[i]
			}
			adamwUpdate(o.cfg, w, o.m[i], o.v[i], g, lr, o.pSteps[i], p.NoDecay)
			g.MustDrop()
			if o.master[i] != nil {
				p.T.Copy_(o.master[i])
			}
		}
	})
	return nil
}

// adamwUpdate applies one AdamW update, torch.optim.AdamW's arithmetic, to
// the fp32 weights w (in place) with moments m and v, from the fp32
// gradient g; t is the parameter's update count including this one.
func adamwUpdate(cfg AdamWConfig, w, m, v, g *ts.Tensor, lr float64, t int, noDecay bool) {
	bc1 := 1 - math.Pow(cfg.Beta1, float64(t))
	bc2 := 1 - math.Pow(cfg.Beta2, float64(t))
	stepSize := lr / bc1
	sqrtBC2 := math.Sqrt(bc2)
	if cfg.WeightDecay != 0 && !noDecay {
		w.MustMulScalar_(ts.FloatScalar(1 - lr*cfg.WeightDecay))
	}
	m.MustLerp_(g, ts.FloatScalar(1-cfg.Beta1))
	g2 := g.MustSquare(false)
	v.MustMulScalar_(ts.FloatScalar(cfg.Beta2))
	g2.MustMulScalar_(ts.FloatScalar(1 - cfg.Beta2))
	v.MustAdd_(g2)
	g2.MustDrop()
	denom := v.MustSqrt(false)
	denom.MustMulScalar_(ts.FloatScalar(1 / sqrtBC2))
	denom.MustAddScalar_(ts.FloatScalar(cfg.Eps))
	upd := m.MustDiv(denom, false)
	denom.MustDrop()
	upd.MustMulScalar_(ts.FloatScalar(-stepSize))
	w.MustAdd_(upd)
	upd.MustDrop()
}

// Drop frees the optimizer's state (moments, master weights); the
// optimizer is unusable afterwards. Trainer.Run drops its optimizer when
// it returns.
func (o *AdamW) Drop() {
	for _, s := range [][]*ts.Tensor{o.m, o.v, o.master} {
		dropAll(s)
		clear(s)
	}
}

// ZeroGrad clears the gradients of the optimizer's parameters.
func (o *AdamW) ZeroGrad() {
	for _, p := range o.params {
		zeroGrad(p.T)
	}
}

// zeroGrad is gotch's Tensor.ZeroGrad without its leak: that leaves the
// gradient's handle to the garbage collector.
func zeroGrad(t *ts.Tensor) {
	g := t.MustGrad(false)
	defer g.MustDrop()
	if g.MustDefined() {
		g.Detach_()
		g.Zero_()
	}
}

// ClipGradNorm scales the gradients of params so that their global L2 norm
// is at most maxNorm (when maxNorm > 0) and returns the norm before
// clipping, as torch.nn.utils.clip_grad_norm_ does. gotch's own clipping
// deadlocks, hence this one.
func ClipGradNorm(params []Param, maxNorm float64) (float64, error) {
	var grads []*ts.Tensor
	for _, p := range params {
		if !p.Trainable {
			continue
		}
		g := p.T.MustGrad(false)
		if !g.MustDefined() {
			g.MustDrop()
			continue
		}
		grads = append(grads, g)
	}
	defer dropAll(grads)
	return clipGrads(grads, maxNorm), nil
}

// clipGrads is ClipGradNorm over gradient tensors (nil entries skipped),
// scaled in place.
func clipGrads(grads []*ts.Tensor, maxNorm float64) float64 {
	var norm float64
	torchx.NoGrad(func() {
		var norms []*ts.Tensor
		for _, g := range grads {
			if g == nil {
				continue
			}
			norms = append(norms, g.MustTotype(gotch.Float, false).MustNorm(true))
		}
		if len(norms) == 0 {
			return
		}
		all := ts.MustStack(norms, 0)
		dropAll(norms)
		total := all.MustNorm(true)
		norm = torchx.Float64s(total, true)[0]
		if maxNorm <= 0 || !(norm > maxNorm) {
			return
		}
		coef := maxNorm / (norm + 1e-6)
		for _, g := range grads {
			if g != nil {
				g.MustMulScalar_(ts.FloatScalar(coef))
			}
		}
	})
	return norm
}
