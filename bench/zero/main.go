// Command zero measures ZeRO sharding (train.TrainerConfig.ZeroStage) on
// c10d: per-rank peak resident memory, the training state each rank holds
// (weights, gradients, optimizer, from train.ShardedStateBytes) and
// throughput of plain data parallel (stage 0) and stages 1 to 3, on a
// Llama where state dominates (vocab 32,000, hidden 512, 8 layers, 8
// heads, MLP 1376: 58 M parameters, fp32 on the CPU) with short rows, so
// activations are small beside the state. Each rank runs -warmup untimed
// steps and -steps timed ones and prints one JSON line; bench/zero/run.sh
// runs the stages one after the other, two ranks each under pltune launch:
//
//	pltune launch --nproc-per-node 2 -- zero -stage 1 [-steps 3] [-seq 128] [-checkpointing]
//
// Stage 3 needs -checkpointing; run.sh passes it to every stage, so all
// of them keep the same activations.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"

	"github.com/pltune/pltune/internal/benchutil"
	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/train"
	"github.com/pltune/pltune/train/dist"
)

type result struct {
	Stage        int     `json:"stage"`
	Rank         int     `json:"rank"`
	World        int     `json:"world"`
	Params       int64   `json:"params"`
	BaseRSSMB    float64 `json:"base_rss_mb"`      // VmRSS before the model is built (libtorch loaded)
	PeakRSSMB    float64 `json:"peak_rss_mb"`      // VmHWM at the end: the whole run, model building included
	StepPeakMB   float64 `json:"step_peak_rss_mb"` // VmHWM over the timed steps only (reset after the warm-up)
	WeightsMB    float64 `json:"weights_mb"`
	GradsMB      float64 `json:"grads_mb"`
	OptimizerMB  float64 `json:"optimizer_mb"`
	StepS        float64 `json:"step_s"`       // median wall time of the timed steps
	TokensPerSec float64 `json:"tokens_per_s"` // all ranks, median step
}

func main() {
	stage := flag.Int("stage", 0, "ZeRO stage (0: plain data parallel)")
	steps := flag.Int("steps", 3, "timed optimizer steps")
	warmup := flag.Int("warmup", 1, "untimed steps first")
	seq := flag.Int("seq", 128, "tokens per row (one row per rank per step)")
	threads := flag.Int("threads", 1, "libtorch intra-op threads per rank")
	ckpt := flag.Bool("checkpointing", false, "activation checkpointing per layer")
	save := flag.String("save", "", "only write the model (Hugging Face layout) into this folder")
	load := flag.String("load", "", "only load this folder: whole (train.LoadModel) or, with -sharded, rank 0's stage-3 pieces of 2 (train.LoadModelSharded); print the peak RSS")
	sharded := flag.Bool("sharded", false, "with -load: load sharded")
	flag.Parse()
	if *save != "" || *load != "" {
		if err := loadOnly(*save, *load, *sharded, *seq); err != nil {
			fmt.Fprintln(os.Stderr, "bench/zero:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*stage, *steps, *warmup, *seq, *threads, *ckpt); err != nil {
		fmt.Fprintln(os.Stderr, "bench/zero:", err)
		os.Exit(1)
	}
}

func run(stage, steps, warmup, seq, threads int, ckpt bool) error {
	torchx.SetNumThreads(threads)
	base := status("VmRSS:")
	g, err := dist.Init(context.Background(), dist.Options{})
	if err != nil {
		return err
	}
	defer g.Close()
	cfg, err := benchConfig(seq)
	if err != nil {
		return err
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: 1, GradientCheckpointing: ckpt})
	if err != nil {
		return err
	}
	m.SetTraining(true)
	n := (warmup + steps) * g.Size()
	r := rand.New(rand.NewPCG(1, 2))
	rows := benchutil.RandomLMRows(r, n, seq, 32000)
	dir, err := os.MkdirTemp("", "pltune-zero")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tc := train.DefaultTrainerConfig()
	tc.OutDir, tc.MaxSteps, tc.BatchSize, tc.NoFinalCheckpoint = dir, warmup+steps, 1, true
	tc.Epochs, tc.WarmupRatio, tc.Comm, tc.ZeroStage, tc.Model = 1, 0, g, stage, m
	timer := benchutil.NewStepTimes(warmup)
	var peakBefore float64
	tc.OnStep = func(rec train.StepRecord) {
		if rec.Step == warmup {
			// Reset VmHWM (Linux: clear_refs 5), so the peak that follows is
			// that of training steps, not of building and sharding the model.
			peakBefore = status("VmHWM:")
			if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
				peakBefore = -1
			}
		}
		timer.Observe(rec.Step)
	}
	params := m.NamedParameters()
	tr, err := train.NewTrainer(tc, params, train.NewLMObjective(m, rows, 0), nil)
	if err != nil {
		return err
	}
	// Accounted while the parameters are whole (stage 3 leaves them sharded).
	sb := train.ShardedStateBytes(params, stage, g.Size(), g.Rank(), ckpt)
	var np int64
	for _, p := range params {
		np += int64(p.T.Numel())
	}
	if _, err := tr.Run(context.Background()); err != nil {
		return err
	}
	med := benchutil.Median(timer.Times)
	stepPeak := status("VmHWM:") / 1024
	if peakBefore < 0 {
		stepPeak = 0 // no clear_refs: unknown
	}
	out, _ := json.Marshal(result{
		Stage: stage, Rank: g.Rank(), World: g.Size(), Params: np,
		BaseRSSMB: base / 1024, PeakRSSMB: max(peakBefore, status("VmHWM:")) / 1024, StepPeakMB: stepPeak,
		WeightsMB: float64(sb.Weights) / 1e6, GradsMB: float64(sb.Grads) / 1e6, OptimizerMB: float64(sb.Optimizer) / 1e6,
		StepS: med, TokensPerSec: float64(seq*g.Size()) / med,
	})
	fmt.Println(string(out))
	return nil
}

// status reads a kB field of /proc/self/status.
func status(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return float64(n)
		}
	}
	return 0
}

func benchConfig(seq int) (*train.Config, error) {
	return train.ParseConfig(fmt.Appendf(nil, `{"architectures":["LlamaForCausalLM"],"vocab_size":32000,"hidden_size":512,
		"intermediate_size":1376,"num_hidden_layers":8,"num_attention_heads":8,"num_key_value_heads":8,
		"rms_norm_eps":1e-5,"rope_theta":500000,"max_position_embeddings":%d}`, seq))
}

// loadOnly writes the bench model to save, or loads load and prints the
// RSS before and the peak after (one JSON line).
func loadOnly(save, load string, sharded bool, seq int) error {
	if save != "" {
		cfg, err := benchConfig(seq)
		if err != nil {
			return err
		}
		m, err := train.NewModel(cfg, train.ModelOptions{Seed: 1})
		if err != nil {
			return err
		}
		return m.Save(save, train.SaveOptions{})
	}
	base := status("VmRSS:")
	var err error
	if sharded {
		_, err = train.LoadModelSharded(load, train.ModelOptions{GradientCheckpointing: true}, 0, 2)
	} else {
		_, err = train.LoadModel(load, train.ModelOptions{})
	}
	if err != nil {
		return err
	}
	out, _ := json.Marshal(map[string]any{"sharded": sharded, "base_rss_mb": base / 1024, "peak_rss_mb": status("VmHWM:") / 1024, "rss_mb": status("VmRSS:") / 1024})
	fmt.Println(string(out))
	return nil
}
