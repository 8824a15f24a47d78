// Package torchsmoke is the smallest real training run on libtorch: a two
// layer network fitted to a fixed regression target with gotch's SGD. It
// exists to prove the build chain end to end (forward, backward, optimizer
// step) before anything larger runs.
package torchsmoke

import (
	"fmt"
	"math"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Run trains for steps steps and returns the loss before each step. report,
// when not nil, is called with each step's loss.
func Run(steps int, report func(step int, loss float64)) ([]float64, error) {
	const n, in, hidden = 64, 8, 16
	xs := make([]float32, n*in)
	ys := make([]float32, n)
	for i := range n {
		var y float64
		for j := range in {
			v := math.Sin(float64(i*in+j) * 0.37)
			xs[i*in+j] = float32(v)
			y += v * float64(j%3-1)
		}
		ys[i] = float32(y)
	}
	x, err := ts.OfSlice(xs)
	if err != nil {
		return nil, err
	}
	defer x.MustDrop()
	x2 := x.MustView([]int64{n, in}, false)
	defer x2.MustDrop()
	y, err := ts.OfSlice(ys)
	if err != nil {
		return nil, err
	}
	defer y.MustDrop()
	y2 := y.MustView([]int64{n, 1}, false)
	defer y2.MustDrop()

	vs := nn.NewVarStore(gotch.CPU)
	l1 := nn.NewLinear(vs.Root().Sub("l1"), in, hidden, nn.DefaultLinearConfig())
	l2 := nn.NewLinear(vs.Root().Sub("l2"), hidden, 1, nn.DefaultLinearConfig())
	opt, err := nn.DefaultSGDConfig().Build(vs, 0.05)
	if err != nil {
		return nil, fmt.Errorf("torchsmoke: building the optimizer: %w", err)
	}
	losses := make([]float64, 0, steps)
	for step := range steps {
		h := l1.Forward(x2)
		a := h.MustTanh(true)
		out := l2.Forward(a)
		a.MustDrop()
		loss, err := out.MseLoss(y2, 1, true) // reduction 1: mean
		if err != nil {
			return nil, fmt.Errorf("torchsmoke: step %d: loss: %w", step, err)
		}
		v, err := loss.Float64Value(nil)
		if err != nil {
			return nil, err
		}
		if err := opt.BackwardStep(loss); err != nil {
			return nil, fmt.Errorf("torchsmoke: step %d: backward/step: %w", step, err)
		}
		loss.MustDrop()
		losses = append(losses, v)
		if report != nil {
			report(step, v)
		}
	}
	return losses, nil
}
