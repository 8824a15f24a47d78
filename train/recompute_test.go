package train

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch/ts"
)

// gradsAfter runs obj's loss on idx, scaled as the trainer scales it,
// through backward, and returns every trainable parameter's gradient by
// name (nil values for parameters that got none), then clears them.
func gradsAfter(t *testing.T, m *Model, obj Objective, idx []int) (float64, map[string][]float64) {
	t.Helper()
	l, err := obj.Loss(idx)
	if err != nil {
		t.Fatal(err)
	}
	loss := torchx.Float64s(l.Sum, false)[0]
	scaled := l.Sum.MustDivScalar(ts.FloatScalar(float64(obj.Units(idx))), false)
	if err := l.backward(scaled); err != nil {
		t.Fatal(err)
	}
	scaled.MustDrop()
	l.Release()
	out := map[string][]float64{}
	for _, p := range m.NamedParameters() {
		g := p.T.MustGrad(false)
		if !p.Trainable {
			if g.MustDefined() {
				t.Errorf("frozen %s holds a gradient", p.Name)
			}
			g.MustDrop()
			continue
		}
		if g.MustDefined() {
			out[p.Name] = torchx.Float64s(g, true)
			p.T.ZeroGrad()
		} else {
			g.MustDrop()
			out[p.Name] = nil
		}
	}
	return loss, out
}

// compareGrads fails when two gradient sets differ anywhere by more than
// tol times the tensor's largest |gradient| (at least 1), or one has a
// gradient the other lacks. The two paths agree to float32 rounding, not
// bit for bit: the checkpointed attention recomputes its probabilities as
// exp(scores − logsumexp) where autograd keeps softmax's, and the head
// runs in chunks. Measured here: at most 1.6e-6 × scale elementwise, at
// most 8e-7 relative in L2 per tensor.
func compareGrads(t *testing.T, got, want map[string][]float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d gradients, want %d", len(got), len(want))
	}
	nonzero := 0
	for name, w := range want {
		g := got[name]
		if (g == nil) != (w == nil) || len(g) != len(w) {
			t.Errorf("%s: gradient presence/size %d vs %d", name, len(g), len(w))
			continue
		}
		worst, scale := 0.0, 1.0
		for i := range w {
			worst = math.Max(worst, math.Abs(g[i]-w[i]))
			scale = math.Max(scale, math.Abs(w[i]))
			if w[i] != 0 {
				nonzero++
			}
		}
		if worst > tol*scale {
			t.Errorf("%s: gradients differ by %.3g (> %g × %.3g, the largest |gradient| or 1)", name, worst, tol, scale)
		}
	}
	if nonzero == 0 {
		t.Error("every gradient is zero: the comparison proves nothing")
	}
}

// TestCheckpointingGradientsEqualPlain: with activation checkpointing the
// loss (1e-6) and every gradient (2e-6, see compareGrads) equal the plain
// path's (fp32 CPU), for
// Llama, Mistral (sliding window) and Mixtral (router aux loss), full
// fine-tuning and LoRA, packed and padded rows.
func TestCheckpointingGradientsEqualPlain(t *testing.T) {
	torchx.SetGradEnabled(true)
	for _, arch := range []string{"llama", "mistral", "mixtral"} {
		for _, lora := range []bool{false, true} {
			for _, pack := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/lora=%v/packed=%v", arch, lora, pack), func(t *testing.T) {
					m := loadRef(t, arch)
					if lora {
						targets := []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
						if m.Config.IsMoE() {
							targets = []string{"q_proj", "v_proj", "o_proj", "w1", "w2", "w3", "gate"}
						}
						if err := ApplyLoRA(m, LoRAConfig{Rank: 4, TargetModules: targets}); err != nil {
							t.Fatal(err)
						}
						perturbAdapters(m)
					}
					rows := countingRows(12, m.Config.VocabSize, pack)
					obj := NewLMObjective(m, rows, 0)
					idx := []int{0, 1, 2}
					if !pack {
						idx = []int{0, 3, 4, 7}
					}
					wantLoss, want := gradsAfter(t, m, obj, idx)
					m.SetGradientCheckpointing(true)
					gotLoss, got := gradsAfter(t, m, obj, idx)
					if d := math.Abs(gotLoss - wantLoss); d > 1e-6*math.Max(1, math.Abs(wantLoss)) {
						t.Errorf("loss %v with checkpointing, %v without", gotLoss, wantLoss)
					}
					compareGrads(t, got, want, 2e-6)
					if lora {
						for n := range got {
							if !strings.HasSuffix(n, ".lora_A.weight") && !strings.HasSuffix(n, ".lora_B.weight") {
								t.Errorf("%s is trainable under LoRA", n)
							}
						}
					}
				})
			}
		}
	}
}
