package train

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/gradcheck"
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

// TestCheckpointingGradientsEqualPlain: with activation checkpointing the
// loss (1e-6) and every gradient (2e-6, see gradcheck.Compare) equal the plain
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
					gradcheck.Compare(t, got, want, 2e-6)
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
