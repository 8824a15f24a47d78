package align

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/gradcheck"
	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train"
)

// preferenceGrads runs obj's loss on idx through backward (with the pass's
// Backward when the model is checkpointed) and returns the loss and every
// trainable parameter's gradient, then clears them. A frozen parameter
// holding a gradient fails the test.
func preferenceGrads(t *testing.T, m *train.Model, obj train.Objective, idx []int) (float64, map[string][]float64) {
	t.Helper()
	l, err := obj.Loss(idx)
	if err != nil {
		t.Fatal(err)
	}
	loss := torchx.Float64s(l.Sum, false)[0]
	if l.Pass != nil {
		err = l.Pass.Backward(l.Sum)
		l.Pass.Drop()
	} else {
		err = l.Sum.Backward()
	}
	if err != nil {
		t.Fatal(err)
	}
	l.Sum.MustDrop()
	out := map[string][]float64{}
	for _, p := range m.NamedParameters() {
		g := p.T.MustGrad(false)
		defined := g.MustDefined()
		if !p.Trainable {
			if defined {
				t.Errorf("frozen %s holds a gradient", p.Name)
			}
			g.MustDrop()
			continue
		}
		if !defined {
			g.MustDrop()
			out[p.Name] = nil
			continue
		}
		out[p.Name] = torchx.Float64s(g, true)
		p.T.ZeroGrad()
	}
	return loss, out
}

// TestCheckpointingGradientsEqualPlain: ORPO and DPO losses and gradients
// with activation checkpointing equal the plain path's (fp32 CPU; loss
// 1e-6, gradients 2e-6 of each tensor's scale) on
// Llama, Mistral and Mixtral, full fine-tuning and LoRA.
func TestCheckpointingGradientsEqualPlain(t *testing.T) {
	torchx.SetGradEnabled(true)
	for _, arch := range []string{"llama", "mistral", "mixtral"} {
		for _, obj := range []string{"orpo", "dpo"} {
			for _, lora := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/lora=%v", arch, obj, lora), func(t *testing.T) {
					m, err := train.LoadModel(filepath.Join("..", "train", "testdata", "ref", arch), train.ModelOptions{})
					if err != nil {
						t.Fatal(err)
					}
					defer m.Drop()
					if lora {
						targets := []string{"q_proj", "v_proj", "o_proj", "down_proj"}
						if m.Config.IsMoE() {
							targets = []string{"q_proj", "v_proj", "w1", "w2", "gate"}
						}
						if err := train.ApplyLoRA(m, train.LoRAConfig{Rank: 4, TargetModules: targets}); err != nil {
							t.Fatal(err)
						}
						torchx.NoGrad(func() {
							for _, p := range m.NamedParameters() {
								if strings.HasSuffix(p.Name, "lora_B.weight") {
									p.T.MustNormal_(0, 0.2)
								}
							}
						})
					}
					pairs := syntheticPairs(5, m.Config.VocabSize)
					var o train.Objective
					if obj == "orpo" {
						if o, err = NewORPO(m, pairs, 0, ORPOConfig{Beta: 0.5}); err != nil {
							t.Fatal(err)
						}
					} else {
						d, err := NewDPO(m, pairs, 0, DPOConfig{Beta: 0.3})
						if err != nil {
							t.Fatal(err)
						}
						// A reference that differs from the policy, so the
						// loss is not at its symmetric point.
						d.Reference = make([]RefLogProbs, len(pairs))
						for i := range pairs {
							d.Reference[i] = RefLogProbs{Chosen: -20 - float64(i), Rejected: -15 + float64(i)}
						}
						o = d
					}
					idx := []int{0, 2, 3}
					wantLoss, want := preferenceGrads(t, m, o, idx)
					m.SetGradientCheckpointing(true)
					gotLoss, got := preferenceGrads(t, m, o, idx)
					if d := math.Abs(gotLoss - wantLoss); d > 1e-6*math.Max(1, math.Abs(wantLoss)) {
						t.Errorf("loss %v with checkpointing, %v without", gotLoss, wantLoss)
					}
					gradcheck.Compare(t, got, want, 2e-6)
					if lora {
						for name := range want {
							if !strings.Contains(name, ".lora_") {
								t.Errorf("%s is trainable under LoRA", name)
							}
						}
					}
				})
			}
		}
	}
}

// TestReferenceWithCheckpointing: DPO's reference log-probs through the
// chunked head of a checkpointed model equal the plain forward's.
func TestReferenceWithCheckpointing(t *testing.T) {
	m, err := train.LoadModel(filepath.Join("..", "train", "testdata", "ref", "mistral"), train.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	pairs := syntheticPairs(4, m.Config.VocabSize)
	var refs [2][]RefLogProbs
	for i, ck := range []bool{false, true} {
		m.SetGradientCheckpointing(ck)
		d, err := NewDPO(m, pairs, 0, DPOConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.ComputeReference(t.Context(), nil, 3); err != nil {
			t.Fatal(err)
		}
		refs[i] = d.Reference
	}
	for i := range pairs {
		a, b := refs[0][i], refs[1][i]
		if math.Abs(a.Chosen-b.Chosen) > 1e-5 || math.Abs(a.Rejected-b.Rejected) > 1e-5 || a.Chosen == 0 {
			t.Errorf("pair %d: %+v with checkpointing, %+v without", i, b, a)
		}
	}
}
