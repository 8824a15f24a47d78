package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/pltune/pltune/train"
	"github.com/pltune/pltune/train/safetensors"
)

// zero3 is the GPU check of ZeRO stage 3 with world size 1: a
// small Llama (fp32, activation checkpointing) trained 4 steps on CUDA with
// TrainerConfig.ZeroStage 3 (its gather/free cycle, vocabulary-sharded
// embedding and head, gradient sums and the final export streamed from
// its shard file) ends with the weights of plain training on CUDA, within
// 1e-4.
func zero3(cpuOnly bool) error {
	dev, where := "cuda", "CUDA"
	if cpuOnly {
		dev, where = "cpu", "CPU"
	} else if !train.CUDAAvailable() {
		return fmt.Errorf("no CUDA device")
	}
	cfg, err := train.ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"vocab_size":1000,"hidden_size":64,
		"intermediate_size":172,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
		"max_position_embeddings":256,"rms_norm_eps":1e-5}`))
	if err != nil {
		return err
	}
	rows := randomRows(8, 64, 1000)
	trainOnce := func(stage int) (map[string][]float64, error) {
		m, err := train.NewModel(cfg, train.ModelOptions{Device: dev, Seed: 1, GradientCheckpointing: true})
		if err != nil {
			return nil, err
		}
		defer m.Drop()
		m.SetTraining(true)
		dir, err := os.MkdirTemp("", "pltune-zero3")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		tc := train.DefaultTrainerConfig()
		tc.OutDir, tc.MaxSteps, tc.BatchSize, tc.LR = dir, 4, 2, 1e-3
		tc.ZeroStage, tc.Model = stage, m
		tc.Export = func(d string) error { return m.Save(d, train.SaveOptions{}) }
		tr, err := train.NewTrainer(tc, m.NamedParameters(), train.NewLMObjective(m, rows, 0), nil)
		if err != nil {
			return nil, err
		}
		if _, err := tr.Run(context.Background()); err != nil {
			return nil, err
		}
		// Stage 3 leaves the model sharded: both are read from final/.
		set, err := safetensors.OpenDir(filepath.Join(dir, "final"))
		if err != nil {
			return nil, err
		}
		defer set.Close()
		w := map[string][]float64{}
		for _, n := range set.Names() {
			v, err := set.ReadFloat32(n)
			if err != nil {
				return nil, err
			}
			for _, x := range v {
				w[n] = append(w[n], float64(x))
			}
		}
		return w, nil
	}
	ref, err := trainOnce(0)
	if err != nil {
		return err
	}
	got, err := trainOnce(3)
	if err != nil {
		return err
	}
	d := 0.0
	for n, r := range ref {
		g := got[n]
		if len(g) != len(r) {
			return fmt.Errorf("zero3: %s: %d weights exported, plain training has %d", n, len(g), len(r))
		}
		for i := range r {
			d = math.Max(d, math.Abs(g[i]-r[i]))
		}
	}
	fmt.Printf("zero3: stage 3 (world size 1) on %s against plain training: max |Δw| = %.3g over %d tensors\n", where, d, len(ref))
	if d > 1e-4 || len(ref) == 0 {
		return fmt.Errorf("zero3: max |Δw| = %.3g, want ≤ 1e-4", d)
	}
	return nil
}
