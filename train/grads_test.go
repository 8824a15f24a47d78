package train

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// scalarObjective is Σ_i c_i·w_i over two one-element parameters; example
// e uses the parameters listed in uses[e], each with coefficient coef[e].
type scalarObjective struct {
	w    []*ts.Tensor
	uses [][]int
	coef []float64
}

func (o *scalarObjective) Len() int            { return len(o.uses) }
func (o *scalarObjective) Units(idx []int) int { return len(idx) }
func (o *scalarObjective) Loss(idx []int) (*Loss, error) {
	var sum *ts.Tensor
	for _, e := range idx {
		for _, p := range o.uses[e] {
			accumulate(&sum, o.w[p].MustTotype(gotch.Float, false).MustMulScalar(ts.FloatScalar(o.coef[e]), true).MustSum(gotch.Float, true))
		}
	}
	return &Loss{Sum: sum, Tokens: len(idx)}, nil
}

func scalarParam(v float64, dt gotch.DType) *ts.Tensor {
	return ts.MustOfSlice([]float32{float32(v)}).MustTotype(dt, true).MustSetRequiresGrad(true, true)
}

// TestAdamWSkipsParameterWithoutGradient: a parameter no micro-batch of a
// step reaches (an unused Mixtral expert) is not updated in that step —
// not by its momentum, not by weight decay — and its bias correction counts
// only its own updates, as torch.optim.AdamW after zero_grad(set_to_none=True).
func TestAdamWSkipsParameterWithoutGradient(t *testing.T) {
	torchx.SetGradEnabled(true)
	w := []*ts.Tensor{scalarParam(1, gotch.Float), scalarParam(1, gotch.Float)}
	defer dropAll(w)
	// Example 0 uses both parameters, example 1 only the first. With one
	// example per step and no shuffling effect (2 examples, MaxSteps 4),
	// the second parameter is reached in the steps that draw example 0.
	obj := &scalarObjective{w: w, uses: [][]int{{0, 1}, {0}}, coef: []float64{1, 1}}
	cfg := DefaultTrainerConfig()
	cfg.OutDir = t.TempDir()
	cfg.LR, cfg.WarmupRatio, cfg.MaxGradNorm, cfg.MaxSteps = 0.1, -1, -1, 4
	cfg.AdamW.WeightDecay = 0.1
	cfg.NoFinalCheckpoint = true
	params := []Param{{Name: "a", T: w[0], Trainable: true}, {Name: "b", T: w[1], Trainable: true}}
	var got [][2]float64
	cfg.OnStep = func(StepRecord) {
		got = append(got, [2]float64{torchx.Float64s(w[0], false)[0], torchx.Float64s(w[1], false)[0]})
	}
	tr, err := NewTrainer(cfg, params, obj, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Replay with torch.optim.AdamW's rules: per-parameter step counts,
	// skipped parameters untouched. The loss is linear, so every gradient
	// is the coefficient (1) when reached.
	order := append(epochOrder(2, cfg.Seed, 0), epochOrder(2, cfg.Seed, 1)...)
	val := [2]float64{1, 1}
	var m, v [2]float64
	var n [2]int
	sawSkip := false
	sched := Schedule{PeakLR: cfg.LR, TotalSteps: 4}
	for s, e := range order {
		lr := sched.LR(s)
		for p := range 2 {
			if p == 1 && e == 1 {
				sawSkip = true
				continue
			}
			n[p]++
			val[p] *= 1 - lr*cfg.AdamW.WeightDecay
			m[p] = 0.9*m[p] + 0.1
			v[p] = 0.999*v[p] + 0.001
			bc1, bc2 := 1-math.Pow(0.9, float64(n[p])), 1-math.Pow(0.999, float64(n[p]))
			val[p] -= lr / bc1 * m[p] / (math.Sqrt(v[p])/math.Sqrt(bc2) + 1e-8)
		}
		for p := range 2 {
			if d := math.Abs(got[s][p] - val[p]); d > 1e-6 {
				t.Errorf("step %d (example %d): parameter %d is %v, want %v", s+1, e, p, got[s][p], val[p])
			}
		}
	}
	if !sawSkip {
		t.Fatal("no step skipped the second parameter: the test proves nothing")
	}
}

// TestLowPrecisionGradientsAccumulateInFP32: a bf16 parameter's gradients
// from two micro-batches are summed in fp32. In bf16, 0.5 + 0.0005 rounds
// back to 0.5; the gradient norm the step reports shows the fp32 sum.
func TestLowPrecisionGradientsAccumulateInFP32(t *testing.T) {
	torchx.SetGradEnabled(true)
	w := []*ts.Tensor{scalarParam(1, gotch.BFloat16)}
	defer dropAll(w)
	obj := &scalarObjective{w: w, uses: [][]int{{0}, {0}}, coef: []float64{1, 0.001}}
	cfg := DefaultTrainerConfig()
	cfg.OutDir = t.TempDir()
	cfg.MaxSteps, cfg.GradAccum, cfg.MaxGradNorm = 1, 2, -1
	cfg.NoFinalCheckpoint = true
	var norm float64
	cfg.OnStep = func(r StepRecord) { norm = r.GradNorm }
	tr, err := NewTrainer(cfg, []Param{{Name: "w", T: w[0], Trainable: true}}, obj, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Each micro-batch's gradient is its coefficient over the window's 2
	// units, rounded to bf16 by backward: 0.5 and bf16(0.0005).
	small := float64(float32(0.0005))
	bf := ts.MustOfSlice([]float32{float32(small)}).MustTotype(gotch.BFloat16, true)
	small = torchx.Float64s(bf, true)[0]
	if want := 0.5 + small; math.Abs(norm-want) > 1e-7 {
		t.Errorf("gradient norm %v; want the fp32 sum %v (bf16 accumulation gives 0.5)", norm, want)
	}
}

// TestLoRAStepLeavesBaseWithoutGradient: after a LoRA training step no base
// weight (embedding, projections, norms, head) requires or holds a
// gradient, and the adapters are fp32 on a bf16 base (PEFT's default).
func TestLoRAStepLeavesBaseWithoutGradient(t *testing.T) {
	for _, ck := range []bool{false, true} {
		m, err := LoadModel(filepath.Join("testdata", "ref", "mistral"), ModelOptions{DType: "bf16", GradientCheckpointing: ck})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Drop()
		if err := ApplyLoRA(m, LoRAConfig{Rank: 4, Dropout: 0.1, TargetModules: []string{"q_proj", "v_proj", "down_proj"}}); err != nil {
			t.Fatal(err)
		}
		m.SetTraining(true)
		cfg := DefaultTrainerConfig()
		cfg.OutDir, cfg.MaxSteps, cfg.BatchSize, cfg.NoFinalCheckpoint, cfg.LR = t.TempDir(), 1, 2, true, 1e-3
		obj := NewLMObjective(m, countingRows(12, m.Config.VocabSize, true), 0)
		params := m.NamedParameters()
		tr, err := NewTrainer(cfg, params, obj, nil)
		if err != nil {
			t.Fatal(err)
		}
		before := map[string][]float64{}
		for _, p := range params {
			if !p.Trainable {
				before[p.Name] = torchx.Float64s(p.T, false)
			}
		}
		if _, err := tr.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		adapters := 0
		for _, p := range params {
			g := p.T.MustGrad(false)
			has := g.MustDefined()
			g.MustDrop()
			if p.Trainable {
				adapters++
				if p.T.DType() != gotch.Float {
					t.Errorf("checkpointing %v: adapter %s is %v; want fp32", ck, p.Name, p.T.DType())
				}
				continue
			}
			if has || p.T.MustRequiresGrad() {
				t.Errorf("checkpointing %v: frozen %s: gradient defined %v, requires grad %v", ck, p.Name, has, p.T.MustRequiresGrad())
			}
			if !slices.Equal(torchx.Float64s(p.T, false), before[p.Name]) {
				t.Errorf("checkpointing %v: frozen %s changed", ck, p.Name)
			}
		}
		if adapters != 12 {
			t.Errorf("checkpointing %v: %d trainable tensors; want 12 adapter matrices", ck, adapters)
		}
	}
}
