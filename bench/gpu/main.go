// Command gpu measures pltune on one CUDA GPU. Its modes (-mode):
//
//   - sft (the default): training throughput and model FLOPs utilisation
//     (MFU) of a ~1B-parameter Llama at sequence 2,048, bf16 compute with
//     fp32 optimizer state, through pltune's trainer;
//   - parity: CUDA against CPU logits of one small random model (fp32, and
//     bf16 within bf16's tolerance), plain and packed rows;
//   - lora: LoRA training of a Llama-3.1-8B-shaped model (random bf16
//     weights) at the sequences of -seqs: tokens/s per step (peak GPU
//     memory is sampled outside, by bench/gpu/device.sh);
//   - zero3: ZeRO stage 3 with world size 1 on CUDA against plain training
//     (zero3.go).
//   - generate: batched greedy generation and scoring of the sft mode's
//     Llama in bf16 on CUDA at the batch sizes of -batches: new tokens/s.
//
// Build it here against PyTorch 2.11's libtorch and carry it to the GPU
// machine with bench/gpu/pack.sh (that machine has no Go); bench/gpu/run.sh
// builds and runs it on a machine with Go and a CUDA PyTorch.
//
// MFU = (6·N + 12·L·H·T) · tokens/s / peak, with N the parameters, L the
// layers, H the hidden size, T the sequence (PaLM's accounting, as
// torchtitan reports it) and peak 990 TFLOP/s (H100/H200 dense bf16).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

func main() {
	seq := flag.Int("seq", 2048, "sequence length")
	batch := flag.Int("batch", 4, "sequences per step")
	steps := flag.Int("steps", 12, "optimizer steps (the first 2 are warm-up, not timed)")
	layers := flag.Int("layers", 16, "layers (16 gives ~1.1B parameters)")
	peak := flag.Float64("peak-tflops", 990, "the GPU's dense bf16 peak")
	cpu := flag.Bool("cpu", false, "run on CPU in fp32 (a smoke test of this program)")
	mode := flag.String("mode", "sft", "sft, parity, lora, zero3 or generate")
	seqs := flag.String("seqs", "8192,16384", "lora: sequence lengths")
	rank := flag.Int("rank", 16, "lora: adapter rank")
	batches := flag.String("batches", "1,8,32", "generate: batch sizes")
	prompt := flag.Int("prompt", 256, "generate: longest prompt")
	newTokens := flag.Int("new", 128, "generate: new tokens per prompt")
	flag.Parse()
	var err error
	switch *mode {
	case "sft":
		err = run(*seq, *batch, *steps, *layers, *peak, *cpu)
	case "parity":
		err = parity(*cpu)
	case "lora":
		err = loraBench(*seqs, *rank, *steps, *layers, *cpu)
	case "zero3":
		err = zero3(*cpu)
	case "generate":
		err = generateBench(*batches, *prompt, *newTokens, *layers, *cpu)
	default:
		err = fmt.Errorf("-mode %q: want sft, parity, lora, zero3 or generate", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpu:", err)
		os.Exit(1)
	}
}

// randomRows are n rows of seq random token ids, each one sequence.
func randomRows(n, seq, vocab int) []tokenize.PackedRow {
	r := rand.New(rand.NewPCG(1, 2))
	rows := make([]tokenize.PackedRow, n)
	for i := range rows {
		row := tokenize.PackedRow{}
		for t := range seq {
			id := r.IntN(vocab)
			row.IDs = append(row.IDs, id)
			row.Labels = append(row.Labels, id)
			row.PositionIDs = append(row.PositionIDs, t)
			row.SegmentIDs = append(row.SegmentIDs, 1)
		}
		rows[i] = row
	}
	return rows
}

func run(seq, batch, steps, layers int, peak float64, cpu bool) error {
	const vocab, hidden = 32000, 2048
	cfg, err := train.ParseConfig([]byte(fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"vocab_size":%d,
		"hidden_size":%d,"intermediate_size":5632,"num_hidden_layers":%d,"num_attention_heads":32,
		"num_key_value_heads":8,"max_position_embeddings":%d,"rms_norm_eps":1e-5,"torch_dtype":"bfloat16"}`, vocab, hidden, layers, seq)))
	if err != nil {
		return err
	}
	opts := train.ModelOptions{Device: "cuda", DType: "bf16", Seed: 1}
	if cpu {
		opts = train.ModelOptions{Seed: 1}
	} else if !train.CUDAAvailable() {
		return fmt.Errorf("no CUDA device: build against a CUDA libtorch (bench/gpu/run.sh)")
	}
	m, err := train.NewModel(cfg, opts)
	if err != nil {
		return err
	}
	defer m.Drop()
	var params int64
	for _, p := range m.NamedParameters() {
		params += int64(p.T.Numel())
	}
	rows := randomRows(batch*steps, seq, vocab)
	dir, err := os.MkdirTemp("", "pltune-gpu-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tc := train.DefaultTrainerConfig()
	tc.OutDir, tc.MaxSteps, tc.BatchSize, tc.LR, tc.NoFinalCheckpoint = dir, steps, batch, 1e-4, true
	var t0 time.Time
	var timedTokens int
	tc.OnStep = func(rec train.StepRecord) {
		switch {
		case rec.Step == 2:
			t0 = time.Now()
		case rec.Step > 2:
			timedTokens += rec.Tokens
		}
		fmt.Printf("step %2d  loss %.4f  %.0f tokens/s\n", rec.Step, rec.Loss, rec.TokensPerS)
	}
	tr, err := train.NewTrainer(tc, m.NamedParameters(), train.NewLMObjective(m, rows, 0), nil)
	if err != nil {
		return err
	}
	if _, err := tr.Run(context.Background()); err != nil {
		return err
	}
	el := time.Since(t0).Seconds()
	tps := float64(timedTokens) / el
	flopsPerToken := 6*float64(params) + 12*float64(layers*hidden*seq)
	fmt.Printf("parameters %.2fB  sequence %d  batch %d\n", float64(params)/1e9, seq, batch)
	fmt.Printf("tokens/s %.0f  MFU %.1f%% of %.0f TFLOP/s\n", tps, 100*tps*flopsPerToken/(peak*1e12), peak)
	return nil
}
