package train

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch/ts"
)

// momentumSGD is a custom Optimizer with state: SGD with heavy-ball
// momentum, its velocity kept in Go memory and checkpointed as JSON.
type momentumSGD struct {
	params []Param
	mu     float64
	vel    [][]float64
	steps  int
	drops  *int
}

func (o *momentumSGD) Params() []Param { return o.params }
func (o *momentumSGD) Steps() int      { return o.steps }
func (o *momentumSGD) ZeroGrad() {
	for _, p := range o.params {
		zeroGrad(p.T)
	}
}

func (o *momentumSGD) StepGrads(lr float64, grads []*ts.Tensor) error {
	o.steps++
	for i, p := range o.params {
		if grads[i] == nil {
			continue
		}
		g := torchx.Float64s(grads[i], false)
		if o.vel[i] == nil {
			o.vel[i] = make([]float64, len(g))
		}
		w := torchx.Float64s(p.T, false)
		for j := range g {
			o.vel[i][j] = o.mu*o.vel[i][j] + g[j]
			w[j] -= lr * o.vel[i][j]
		}
		vals := make([]float32, len(w))
		for j, x := range w {
			vals[j] = float32(x)
		}
		if err := loadInto(p.T, vals); err != nil {
			return err
		}
	}
	return nil
}

func (o *momentumSGD) SaveState(dir string) error {
	b, _ := json.Marshal(o.vel)
	return os.WriteFile(filepath.Join(dir, "velocity.json"), b, 0o644)
}

func (o *momentumSGD) LoadState(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "velocity.json"))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, &o.vel)
}

func (o *momentumSGD) Drop() { *o.drops++ }

// TestCustomOptimizer: a run with NewOptimizer trains with it, checkpoints
// its state, resumes to the uninterrupted run's weights, and drops it.
func TestCustomOptimizer(t *testing.T) {
	drops := 0
	newSGD := func(ps []Param) (Optimizer, error) {
		return &momentumSGD{params: ps, mu: 0.9, vel: make([][]float64, len(ps)), drops: &drops}, nil
	}
	cfg := testConfig(t.TempDir())
	cfg.NewOptimizer, cfg.LR = newSGD, 0.5
	ref := newBigram(t, 8)
	var losses []float64
	cfg.OnStep = func(r StepRecord) { losses = append(losses, r.Loss) }
	runBigram(t, cfg, ref)
	if losses[len(losses)-1] >= losses[0] {
		t.Errorf("loss %v → %v: momentum SGD did not train", losses[0], losses[len(losses)-1])
	}
	if drops != 1 {
		t.Errorf("optimizer dropped %d times", drops)
	}
	if _, err := os.Stat(filepath.Join(cfg.OutDir, "checkpoint-16", "velocity.json")); err != nil {
		t.Errorf("the checkpoint lacks the optimizer's state: %v", err)
	}

	cfg.OutDir, cfg.OnStep = t.TempDir(), nil
	var inits []RunInfo
	cfg.Recorders = []Recorder{stopAt{step: 5, inits: &inits}}
	b := newBigram(t, 8)
	runBigram(t, cfg, b)
	cfg.Recorders, cfg.Resume = nil, true
	runBigram(t, cfg, b)
	if d := maxAbsDiff(weights(ref), weights(b)); d > 1e-6 || !slices.Equal(readSteps(t, filepath.Join(cfg.OutDir, "metrics.jsonl")), seq(16)) {
		t.Errorf("resumed run differs by %g from the uninterrupted one", d)
	}
	cfg.NewOptimizer = nil
	tr, err := NewTrainer(cfg, b.params(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "optimizer") {
		t.Errorf("resuming a momentum-SGD checkpoint with AdamW: %v", err)
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func maxAbsDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}
