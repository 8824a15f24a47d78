package train

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func tensorOf(t *testing.T, vals []float64, shape []int64) *ts.Tensor {
	t.Helper()
	f := make([]float32, len(vals))
	for i, v := range vals {
		f[i] = float32(v)
	}
	x := ts.MustOfSlice(f).MustView(shape, true)
	return x
}

// setGrad makes p's gradient g by backpropagating sum(p·g).
func setGrad(t *testing.T, p *ts.Tensor, g *ts.Tensor) {
	t.Helper()
	prod := p.MustMul(g, false)
	loss := prod.MustSum(gotch.Float, true)
	loss.MustBackward()
	loss.MustDrop()
}

// TestAdamWMatchesPyTorch replays torch.optim.AdamW + clip_grad_norm_ on
// fixed parameters and gradients (testdata/adamw/gen.py): weight decay on
// one parameter, none on the NoDecay one, changing learning rates, clipping.
func TestAdamWMatchesPyTorch(t *testing.T) {
	var ref struct {
		Shapes            [][]int64
		Beta1, Beta2, Eps float64
		WeightDecay       float64 `json:"weight_decay"`
		MaxNorm           float64 `json:"max_norm"`
		Init              [][]float64
		Steps             []struct {
			LR     float64
			Grads  [][]float64
			Norm   float64
			Params [][]float64
		}
	}
	b, err := os.ReadFile("testdata/adamw/adamw.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	params := make([]Param, len(ref.Shapes))
	for i, s := range ref.Shapes {
		x := tensorOf(t, ref.Init[i], s).MustSetRequiresGrad(true, true)
		params[i] = Param{Name: "p", T: x, Trainable: true, NoDecay: i == 1}
	}
	opt, err := NewAdamW(params, AdamWConfig{Beta1: ref.Beta1, Beta2: ref.Beta2, Eps: ref.Eps, WeightDecay: ref.WeightDecay})
	if err != nil {
		t.Fatal(err)
	}
	for si, st := range ref.Steps {
		opt.ZeroGrad()
		for i, p := range params {
			g := tensorOf(t, st.Grads[i], ref.Shapes[i])
			setGrad(t, p.T, g)
			g.MustDrop()
		}
		norm, err := ClipGradNorm(params, ref.MaxNorm)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(norm-st.Norm) > 1e-4*st.Norm {
			t.Errorf("step %d: grad norm %.6f, PyTorch %.6f", si, norm, st.Norm)
		}
		if err := opt.Step(st.LR); err != nil {
			t.Fatal(err)
		}
		for i, p := range params {
			got := p.T.Float64Values()
			for j, want := range st.Params[i] {
				if math.Abs(got[j]-want) > 1e-5 {
					t.Fatalf("step %d param %d[%d] = %.7f, PyTorch %.7f", si, i, j, got[j], want)
				}
			}
		}
	}
}

func TestScheduleWarmupCosine(t *testing.T) {
	s := Schedule{PeakLR: 1e-3, WarmupSteps: 4, TotalSteps: 14, MinLRRatio: 0.1}
	cases := []struct {
		step int
		want float64
	}{
		{0, 0}, {1, 2.5e-4}, {3, 7.5e-4}, {4, 1e-3}, {9, 1e-4 + 0.9e-3*0.5}, {14, 1e-4}, {100, 1e-4},
	}
	for _, c := range cases {
		if got := s.LR(c.step); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("LR(%d) = %g, want %g", c.step, got, c.want)
		}
	}
	for step := 4; step < 14; step++ {
		if s.LR(step+1) > s.LR(step) {
			t.Errorf("LR rises after warmup at step %d", step)
		}
	}
}
