package train

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train/safetensors"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// TestZeroPartitions: both partitions cover every element of every
// parameter exactly once, in contiguous pieces, and the flat one gives
// each rank at most ceil(N/world) elements.
func TestZeroPartitions(t *testing.T) {
	sizes := []int64{7, 1, 30, 2, 13}
	for world := 1; world <= 5; world++ {
		flat, shard, total := zeroPartition(sizes, world)
		for name, parts := range map[string][][]zeroPiece{"flat": flat, "per-parameter": zeroPartitionPerParam(sizes, world)} {
			seen := make([][]int, len(sizes))
			for i, n := range sizes {
				seen[i] = make([]int, n)
			}
			for r, ps := range parts {
				var n int64
				for _, pc := range ps {
					for e := pc.start; e < pc.start+pc.n; e++ {
						seen[pc.param][e]++
					}
					n += pc.n
				}
				if name == "flat" && n > shard {
					t.Errorf("world %d: rank %d holds %d elements, shard is %d", world, r, n, shard)
				}
			}
			for i := range seen {
				for e, c := range seen[i] {
					if c != 1 {
						t.Fatalf("%s, world %d: parameter %d element %d covered %d times", name, world, i, e, c)
					}
				}
			}
		}
		if total != 53 {
			t.Fatalf("total %d", total)
		}
	}
}

func TestParamUnit(t *testing.T) {
	for name, want := range map[string]int{
		"model.embed_tokens.weight":                           embedUnit,
		"model.layers.0.input_layernorm.weight":               0,
		"model.layers.11.self_attn.q_proj.lora_A.weight":      11,
		"model.layers.3.block_sparse_moe.experts.7.w2.weight": 3,
		"model.norm.weight":                                   12,
		"lm_head.weight":                                      12,
	} {
		if got := paramUnit(name, 12); got != want {
			t.Errorf("%s: unit %d, want %d", name, got, want)
		}
	}
}

func zeroTinyLlama(t *testing.T, checkpointing, lora bool) (*Model, Objective) {
	t.Helper()
	cfg, err := ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"vocab_size":61,"hidden_size":16,"intermediate_size":24,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-5,"rope_theta":10000}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(cfg, ModelOptions{Seed: 3, GradientCheckpointing: checkpointing})
	if err != nil {
		t.Fatal(err)
	}
	if lora {
		torchx.ManualSeed(5)
		if err := ApplyLoRA(m, LoRAConfig{Rank: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj", "down_proj"}}); err != nil {
			t.Fatal(err)
		}
	}
	rows := make([]tokenize.PackedRow, 8)
	for i := range rows {
		for j := range 10 {
			id := (i*5 + j*j + 2) % 61
			rows[i].IDs, rows[i].Labels = append(rows[i].IDs, id), append(rows[i].Labels, id)
			rows[i].PositionIDs, rows[i].SegmentIDs = append(rows[i].PositionIDs, j), append(rows[i].SegmentIDs, 1)
		}
	}
	m.SetTraining(true)
	return m, NewLMObjective(m, rows, 0)
}

func modelWeights(m *Model) []float64 {
	var w []float64
	for _, p := range m.NamedParameters() {
		w = append(w, p.T.Float64Values()...)
	}
	return w
}

// TestZeroOneProcess: every stage in a single process (no group: one
// shard holding everything) trains as plain AdamW; stage 3 also through
// its gather/free cycle and its own gradient sums (the CPU counterpart of
// the world-size-1 GPU check), with the optimizer offloaded too.
func TestZeroOneProcess(t *testing.T) {
	torchx.SetGradEnabled(true)
	for _, lora := range []bool{false, true} {
		for _, stage := range []int{1, 2, 3} {
			for _, offload := range []bool{false, true} {
				t.Run(fmt.Sprintf("lora=%v/stage%d/offload=%v", lora, stage, offload), func(t *testing.T) {
					run := func(stage int) []float64 {
						// Stage 2 runs the per-layer reduction with
						// checkpointing, the step-end one without (offload
						// variant).
						m, obj := zeroTinyLlama(t, !(stage == 2 && offload), lora)
						defer m.Drop()
						cfg := DefaultTrainerConfig()
						cfg.OutDir, cfg.LR, cfg.Epochs, cfg.BatchSize, cfg.GradAccum = t.TempDir(), 3e-3, 2, 2, 2
						cfg.AdamW.WeightDecay = 0.01
						cfg.ZeroStage, cfg.Model = stage, m
						cfg.OffloadOptimizer = offload && stage > 0
						cfg.NoFinalCheckpoint = stage == 3 && offload // the export's staging path
						cfg.Export = func(dir string) error {
							if lora {
								return m.SaveAdapter(dir, "")
							}
							return m.Save(dir, SaveOptions{})
						}
						// Held-out loss every 2 steps: under stage 3 its
						// passes gather the units without gradients.
						cfg.EvalEvery = 2
						var evals []float64
						cfg.OnStep = func(r StepRecord) {
							if r.EvalLoss != nil {
								evals = append(evals, *r.EvalLoss)
							}
						}
						tr, err := NewTrainer(cfg, m.NamedParameters(), obj, obj)
						if err != nil {
							t.Fatal(err)
						}
						if _, err := tr.Run(context.Background()); err != nil {
							t.Fatal(err)
						}
						if len(evals) == 0 {
							t.Fatal("no held-out loss")
						}
						if stage < 3 {
							return modelWeights(m)
						}
						// Stage 3 leaves the model sharded: read final/,
						// streamed from the shard files.
						file, prefix := "model.safetensors", ""
						if lora {
							file, prefix = "adapter_model.safetensors", peftPrefix
						}
						f, err := safetensors.OpenFile(filepath.Join(cfg.OutDir, "final", file))
						if err != nil {
							t.Fatal(err)
						}
						defer f.Close()
						var w []float64
						for _, p := range m.NamedParameters() {
							if !p.Trainable {
								w = append(w, p.T.Float64Values()...)
								continue
							}
							v, err := f.ReadFloat32(prefix + p.Name)
							if err != nil {
								t.Fatal(err)
							}
							for _, x := range v {
								w = append(w, float64(x))
							}
						}
						if _, err := os.Stat(filepath.Join(cfg.OutDir, ".zero-export")); !os.IsNotExist(err) {
							t.Errorf("the export's staging folder is left behind: %v", err)
						}
						return w
					}
					ref, got := run(0), run(stage)
					d := 0.0
					for i := range ref {
						d = math.Max(d, math.Abs(ref[i]-got[i]))
					}
					if d > 1e-6 {
						t.Errorf("max |Δw| = %.3g against plain AdamW, want ≤ 1e-6", d)
					}
				})
			}
		}
	}
}

// TestZeroStage3Requirements: stage 3 refuses a model without activation
// checkpointing, a missing Model, and checkpoint exports.
func TestZeroStage3Requirements(t *testing.T) {
	torchx.SetGradEnabled(true)
	m, obj := zeroTinyLlama(t, false, false)
	defer m.Drop()
	for _, c := range []struct {
		cfg  func(*TrainerConfig)
		want string
	}{
		{func(c *TrainerConfig) { c.Model = m }, "activation checkpointing"},
		{func(c *TrainerConfig) {}, "needs TrainerConfig.Model"},
		{func(c *TrainerConfig) { c.Model, c.ExportCheckpoints = m, true }, "ExportCheckpoints"},
		{func(c *TrainerConfig) { c.ZeroStage = 4 }, "ZeroStage 4"},
		{func(c *TrainerConfig) { c.ZeroStage, c.OffloadOptimizer = 0, true }, "OffloadOptimizer needs"},
	} {
		cfg := DefaultTrainerConfig()
		cfg.OutDir, cfg.ZeroStage = t.TempDir(), 3
		c.cfg(&cfg)
		tr, err := NewTrainer(cfg, m.NamedParameters(), obj, nil)
		if err == nil {
			_, err = tr.Run(context.Background())
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an error saying %q", err, c.want)
		}
	}
}

// TestShardedStateBytes: the accounting of a rank's state: plain data
// parallel holds 16 bytes per fp32 parameter; stage 1 shards the 8 bytes of
// moments; stage 2 with checkpointing also the gradients but for the
// largest unit's; stage 3 holds 16/world bytes per parameter plus the
// largest unit's weights (twice: the next unit is prefetched) and
// gradients whole — a decoder layer, not the embedding or LM head, which
// it never gathers whole.
func TestShardedStateBytes(t *testing.T) {
	m, _ := zeroTinyLlama(t, true, false)
	defer m.Drop()
	ps := m.NamedParameters()
	var n int64
	for _, p := range ps {
		if p.T.DType() != gotch.Float {
			t.Fatal("want an fp32 model")
		}
		n += int64(p.T.Numel())
	}
	ddp := ShardedStateBytes(ps, 0, 2, 0, true)
	if ddp.Total() != 16*n {
		t.Errorf("DDP: %d bytes, want %d", ddp.Total(), 16*n)
	}
	s1 := ShardedStateBytes(ps, 1, 2, 0, true)
	if s1.Weights != 4*n || s1.Grads != 4*n || s1.Optimizer > 4*n+8 || s1.Optimizer < 4*n-8 {
		t.Errorf("stage 1: %+v for %d parameters", s1, n)
	}
	s3 := ShardedStateBytes(ps, 3, 2, 0, true)
	// The largest unit is a decoder layer: two norms (16 each), q and o
	// (16×16), k and v (8×16), the MLP (3 × 24×16).
	unit := int64(2*16 + 2*256 + 2*128 + 3*384)
	// Weights: the pieces, the unit whole and the next one prefetched.
	if s3.Weights != 2*n+8*unit || s3.Grads != 2*n+4*unit || s3.Optimizer != 4*n {
		t.Errorf("stage 3: %+v for %d parameters (largest unit %d)", s3, n, unit)
	}
	// A vocabulary far larger than a layer: stage 3 never holds the
	// embedding or LM head whole, only a head chunk of at most a layer's
	// elements (its weights and fp32 gradient).
	big := []Param{
		{Name: "model.embed_tokens.weight", T: ts.MustZeros([]int64{1000, 16}, gotch.Float, gotch.CPU), Trainable: true},
		{Name: "model.layers.0.mlp.up_proj.weight", T: ts.MustZeros([]int64{64, 16}, gotch.Float, gotch.CPU), Trainable: true},
		{Name: "model.norm.weight", T: ts.MustZeros([]int64{16}, gotch.Float, gotch.CPU), Trainable: true},
		{Name: "lm_head.weight", T: ts.MustZeros([]int64{1000, 16}, gotch.Float, gotch.CPU), Trainable: true},
	}
	var nb int64 = 2*16000 + 1024 + 16
	if b := ShardedStateBytes(big, 3, 2, 0, true); b.Weights != 2*nb+4*1024*2 || b.Grads != 2*nb+4*1024 || b.Optimizer != 4*nb {
		t.Errorf("stage 3, vocabulary-dominated: %+v for %d parameters (largest layer 1024)", b, nb)
	}
	for _, p := range big {
		p.T.MustDrop()
	}
	if s2 := ShardedStateBytes(ps, 2, 2, 0, false); s2 != s1 {
		t.Errorf("stage 2 without checkpointing: %+v, want stage 1's %+v (gradients whole in backward)", s2, s1)
	}
	if s2 := ShardedStateBytes(ps, 2, 2, 0, true); s2.Weights != 4*n || s2.Grads != 2*n+4*unit || s2.Optimizer != 4*n {
		t.Errorf("stage 2 with checkpointing: %+v for %d parameters (largest unit %d)", s2, n, unit)
	}
}
