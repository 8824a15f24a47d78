// Command dist benchmarks pltune's data parallelism on c10d. Run it under
// `pltune launch` (or torchrun --no-python); bench/dist/run.sh runs the
// whole comparison, with PyTorch's torch.distributed on the same libtorch
// as the reference for the all-reduce:
//
//	dist allreduce [-mb 100] [-iters 5] [-grads 100] [-small 2000]
//	dist llama [-steps 4] [-batch 4] [-seq 256]
//
// allreduce times a sum over all ranks of one tensor of -mb megabytes and of
// the same bytes split into -grads tensors (large enough to be reduced in
// place) and into -small tensors (packed into 25 MB buckets). llama trains the tiny Llama of BENCHMARKS.md for -steps
// optimizer steps with a global batch of -batch rows (split over the ranks)
// and reports the trainer's tokens/s over all ranks. Rank 0 prints.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
	"github.com/pltune/pltune/train/dist"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dist allreduce|llama [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "allreduce":
		err = allReduce(os.Args[2:])
	case "llama":
		err = llama(os.Args[2:])
	default:
		err = fmt.Errorf("unknown benchmark %q; want allreduce or llama", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/dist:", err)
		os.Exit(1)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func allReduce(args []string) error {
	fs := flag.NewFlagSet("allreduce", flag.ExitOnError)
	mb := fs.Int("mb", 100, "megabytes (10^6 bytes) of float32 to reduce")
	iters := fs.Int("iters", 5, "timed all-reduces per layout (after one warm-up)")
	grads := fs.Int("grads", 100, "tensors the bytes are split into for the gradient layout")
	small := fs.Int("small", 2000, "tensors the bytes are split into for the many-small-tensors layout")
	fs.Parse(args)
	g, err := dist.Init(context.Background(), dist.Options{})
	if err != nil {
		return err
	}
	defer g.Close()
	n := int64(*mb) * 1_000_000 / 4
	one := ts.MustOnes([]int64{n}, gotch.Float, gotch.CPU)
	many := make([]*ts.Tensor, *grads)
	for i := range many {
		many[i] = ts.MustOnes([]int64{n / int64(*grads)}, gotch.Float, gotch.CPU)
	}
	tiny := make([]*ts.Tensor, *small)
	for i := range tiny {
		tiny[i] = ts.MustOnes([]int64{n / int64(*small)}, gotch.Float, gotch.CPU)
	}
	bytes := float64(n * 4)
	for _, c := range []struct {
		name    string
		tensors []*ts.Tensor
	}{
		{"one tensor", []*ts.Tensor{one}},
		{fmt.Sprintf("%d tensors (each reduced in place)", *grads), many},
		{fmt.Sprintf("%d tensors (packed into 25 MB buckets)", *small), tiny},
	} {
		var times []float64
		for i := range *iters + 1 {
			if err := g.Barrier(); err != nil {
				return err
			}
			t0 := time.Now()
			if err := g.AllReduceSum(c.tensors); err != nil {
				return err
			}
			if i > 0 {
				times = append(times, time.Since(t0).Seconds())
			}
		}
		if g.Rank() == 0 {
			m := median(times)
			algbw := bytes / m / 1e9
			busbw := algbw * 2 * float64(g.Size()-1) / float64(g.Size())
			fmt.Printf("pltune %s all-reduce, %d ranks, %d MB as %s: median %.3f s, algbw %.2f GB/s, busbw %.2f GB/s\n",
				g.Backend(), g.Size(), *mb, c.name, m, algbw, busbw)
		}
	}
	return nil
}

func llama(args []string) error {
	fs := flag.NewFlagSet("llama", flag.ExitOnError)
	steps := fs.Int("steps", 4, "timed optimizer steps (after one warm-up step)")
	batch := fs.Int("batch", 4, "global batch: rows per optimizer step over all ranks")
	seq := fs.Int("seq", 256, "tokens per row")
	fs.Parse(args)
	var comm train.Communicator
	world, rank := 1, 0
	if dist.Launched() {
		g, err := dist.Init(context.Background(), dist.Options{})
		if err != nil {
			return err
		}
		defer g.Close()
		comm, world, rank = g, g.Size(), g.Rank()
	}
	if *batch%world != 0 {
		return fmt.Errorf("global batch %d does not split over %d ranks", *batch, world)
	}
	cfg, err := train.ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"vocab_size":32000,"hidden_size":256,"intermediate_size":688,
		"num_hidden_layers":4,"num_attention_heads":8,"num_key_value_heads":2,"rms_norm_eps":1e-5,"rope_theta":500000}`))
	if err != nil {
		return err
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: 1})
	if err != nil {
		return err
	}
	defer m.Drop()
	r := rand.New(rand.NewPCG(1, 2))
	rows := make([]tokenize.PackedRow, (*steps+1)**batch)
	for i := range rows {
		ids, pos, seg := make([]int, *seq), make([]int, *seq), make([]int, *seq)
		for j := range ids {
			ids[j], pos[j], seg[j] = r.IntN(32000), j, 1
		}
		rows[i] = tokenize.PackedRow{IDs: ids, Labels: slices.Clone(ids), PositionIDs: pos, SegmentIDs: seg}
	}
	tc := train.DefaultTrainerConfig()
	tc.OutDir, err = os.MkdirTemp("", "pltune-bench-dist")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tc.OutDir)
	tc.MaxSteps = *steps + 1
	tc.BatchSize = *batch / world
	tc.LR = 1e-4
	tc.Comm = comm
	tc.NoFinalCheckpoint = true
	var tps []float64
	tc.OnStep = func(s train.StepRecord) {
		if s.Step > 1 {
			tps = append(tps, s.TokensPerS)
		}
	}
	tr, err := train.NewTrainer(tc, m.NamedParameters(), train.NewLMObjective(m, rows, 0), nil)
	if err != nil {
		return err
	}
	if _, err := tr.Run(context.Background()); err != nil {
		return err
	}
	if rank == 0 {
		fmt.Printf("pltune tiny Llama training, %d process(es) × %d libtorch threads, global batch %d × %d tokens: median %.0f tokens/s over %d steps\n",
			world, torchx.NumThreads(), *batch, *seq, median(tps), len(tps))
	}
	return nil
}
