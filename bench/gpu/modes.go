package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// parityConfigs are the small models parity compares: a Llama with
// Llama 3.1's rope scaling and a Mixtral.
var parityConfigs = map[string]string{
	"llama": `{"architectures":["LlamaForCausalLM"],"vocab_size":32000,"hidden_size":256,"intermediate_size":688,
		"num_hidden_layers":4,"num_attention_heads":8,"num_key_value_heads":2,"rms_norm_eps":1e-5,"rope_theta":500000,
		"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":128},
		"max_position_embeddings":1024,"torch_dtype":"float32"}`,
	"mixtral": `{"architectures":["MixtralForCausalLM"],"vocab_size":32000,"hidden_size":256,"intermediate_size":512,
		"num_hidden_layers":2,"num_attention_heads":8,"num_key_value_heads":2,"num_local_experts":4,"num_experts_per_tok":2,
		"rms_norm_eps":1e-5,"max_position_embeddings":1024,"torch_dtype":"float32"}`,
}

// Parity bounds: the largest logit difference relative to the largest
// CPU logit. fp32 on CUDA differs from CPU only by summation order; bf16
// rounds every activation to 8 bits of mantissa.
const (
	parityFP32 = 1e-4
	parityBF16 = 5e-2
)

// parity compares the logits of each parity model on CUDA (fp32 and bf16)
// with the same model's on CPU (fp32), on a batch of two rows and on one
// packed row of three sequences.
func parity(cpuOnly bool) error {
	dev := "cuda"
	if cpuOnly {
		dev = "cpu"
	} else if !train.CUDAAvailable() {
		return fmt.Errorf("no CUDA device")
	}
	dir, err := os.MkdirTemp("", "pltune-gpu-parity")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	failed := false
	for _, name := range []string{"llama", "mixtral"} {
		cfg, err := train.ParseConfig([]byte(parityConfigs[name]))
		if err != nil {
			return err
		}
		m, err := train.NewModel(cfg, train.ModelOptions{Seed: 7})
		if err != nil {
			return err
		}
		path := dir + "/" + name
		if err := m.Save(path, train.SaveOptions{}); err != nil {
			return err
		}
		ref := logitsOn(m)
		m.Drop()
		for _, dt := range []string{"f32", "bf16"} {
			mm, err := train.LoadModel(path, train.ModelOptions{Device: dev, DType: dt})
			if err != nil {
				return err
			}
			got := logitsOn(mm)
			mm.Drop()
			bound := parityFP32
			if dt == "bf16" {
				bound = parityBF16
				// bf16 flips some of the random router's top-2 choices
				// (measured here on CPU: 0.16): reported, not bounded.
				if cfg.IsMoE() {
					bound = math.Inf(1)
				}
			}
			for _, k := range []string{"batch", "packed"} {
				d := relDiff(got[k], ref[k])
				verdict := "ok"
				if !(d <= bound) {
					verdict, failed = "FAIL", true
				}
				fmt.Printf("parity %-7s %-8v %-6s %s vs CPU fp32: relative difference %.2g (bound %g) %s\n", name, dt, k, dev, d, bound, verdict)
			}
		}
	}
	if failed {
		return fmt.Errorf("parity: logits beyond the bounds")
	}
	return nil
}

// logitsOn returns m's fp32 logits, on CPU, for a batch of two rows of 96
// tokens and one packed row of three sequences (40, 56 and 32 tokens).
func logitsOn(m *train.Model) map[string][]float32 {
	out := map[string][]float32{}
	V := int64(m.Config.VocabSize)
	ids := func(n, off int) []int64 {
		v := make([]int64, n)
		for i := range v {
			v[i] = int64((i*7919 + off*104729) % int(V))
		}
		return v
	}
	torchx.NoGrad(func() {
		batch := append(ids(96, 1), ids(96, 2)...)
		in := ts.MustOfSlice(batch).MustView([]int64{2, 96}, true)
		o, err := m.Forward(in, train.ForwardOptions{})
		in.MustDrop()
		if err != nil {
			panic(err)
		}
		out["batch"] = cpuValues(o.Logits)
		o.Drop()
		var packed, pos, seg []int64
		for s, n := range []int{40, 56, 32} {
			packed = append(packed, ids(n, s+3)...)
			for i := range n {
				pos, seg = append(pos, int64(i)), append(seg, int64(s+1))
			}
		}
		row := func(v []int64) *ts.Tensor { return ts.MustOfSlice(v).MustView([]int64{1, int64(len(v))}, true) }
		in, p, sg := row(packed), row(pos), row(seg)
		o, err = m.Forward(in, train.ForwardOptions{PositionIDs: p, SegmentIDs: sg})
		in.MustDrop()
		p.MustDrop()
		sg.MustDrop()
		if err != nil {
			panic(err)
		}
		out["packed"] = cpuValues(o.Logits)
		o.Drop()
	})
	return out
}

func cpuValues(t *ts.Tensor) []float32 {
	c := t.MustTo(gotch.CPU, false).MustTotype(gotch.Float, true).MustContiguous(true)
	defer c.MustDrop()
	return c.Vals().([]float32)
}

// relDiff is max |got − want| / max |want|.
func relDiff(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, s float64
	for i := range got {
		d = max(d, math.Abs(float64(got[i]-want[i])))
		s = max(s, math.Abs(float64(want[i])))
	}
	return d / s
}

// loraBench trains rank-r LoRA adapters (q, k, v, o projections) of a
// Llama-3.1-8B-shaped model with random bf16 weights, batch 1, at each
// sequence of seqs, and prints tokens/s per sequence. With cpuOnly it
// runs a small model in fp32 (a smoke test of this program).
func loraBench(seqList string, rank, steps, layers int, cpuOnly bool) error {
	shape := `"vocab_size":128256,"hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,
		"num_attention_heads":32,"num_key_value_heads":8`
	opts := train.ModelOptions{Device: "cuda", DType: "bf16", Seed: 1}
	if cpuOnly {
		shape = fmt.Sprintf(`"vocab_size":1000,"hidden_size":256,"intermediate_size":688,"num_hidden_layers":%d,
			"num_attention_heads":8,"num_key_value_heads":2`, min(layers, 2))
		opts = train.ModelOptions{Seed: 1}
	} else if !train.CUDAAvailable() {
		return fmt.Errorf("no CUDA device")
	}
	var seqs []int
	for _, s := range strings.Split(seqList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("-seqs %q: want positive sequence lengths", seqList)
		}
		seqs = append(seqs, n)
	}
	cfg, err := train.ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],` + shape + `,"rms_norm_eps":1e-5,
		"rope_theta":500000,"max_position_embeddings":131072,"rope_scaling":{"rope_type":"llama3","factor":8.0,
		"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},"torch_dtype":"bfloat16"}`))
	if err != nil {
		return err
	}
	t0 := time.Now()
	m, err := train.NewModel(cfg, opts)
	if err != nil {
		return err
	}
	defer m.Drop()
	if err := train.ApplyLoRA(m, train.LoRAConfig{Rank: rank, Alpha: float64(2 * rank), TargetModules: []string{"q_proj", "k_proj", "v_proj", "o_proj"}}); err != nil {
		return err
	}
	var params, trainable int64
	for _, p := range m.NamedParameters() {
		params += int64(p.T.Numel())
		if p.Trainable {
			trainable += int64(p.T.Numel())
		}
	}
	fmt.Printf("lora: %.2fB parameters, %.1fM trainable (rank %d), built in %.1f s\n", float64(params)/1e9, float64(trainable)/1e6, rank, time.Since(t0).Seconds())
	steps = max(steps, 2)
	for _, seq := range seqs {
		dir, err := os.MkdirTemp("", "pltune-gpu-lora")
		if err != nil {
			return err
		}
		tc := train.DefaultTrainerConfig()
		tc.OutDir, tc.MaxSteps, tc.BatchSize, tc.LR, tc.NoFinalCheckpoint, tc.WarmupRatio = dir, steps, 1, 1e-4, true, 0
		var start time.Time
		var tokens int
		tc.OnStep = func(rec train.StepRecord) {
			if rec.Step == 1 {
				start = time.Now()
			} else {
				tokens += rec.Tokens
			}
			fmt.Printf("lora seq %d step %d  loss %.4f  %.0f tokens/s\n", seq, rec.Step, rec.Loss, rec.TokensPerS)
		}
		tr, err := train.NewTrainer(tc, m.NamedParameters(), train.NewLMObjective(m, randomRows(steps, seq, cfg.VocabSize), 0), nil)
		if err == nil {
			_, err = tr.Run(context.Background())
		}
		os.RemoveAll(dir)
		if err != nil {
			// An out-of-memory at one length is a result; go on.
			fmt.Printf("lora seq %d: %v\n", seq, err)
			continue
		}
		fmt.Printf("lora seq %d: %.0f tokens/s over %d timed steps\n", seq, float64(tokens)/time.Since(start).Seconds(), steps-1)
	}
	return nil
}
