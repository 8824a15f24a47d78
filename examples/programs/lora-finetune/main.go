// Command lora-finetune fine-tunes a Hugging Face model folder with LoRA on
// your own chat data and writes a PEFT adapter (or, with --merge, the merged
// model) that transformers, PEFT and vLLM load.
//
//	go run ./examples/programs/lora-finetune --model ~/models/Llama-3.1-8B-Instruct \
//	    --data my-chats.jsonl --out out/my-lora --device cuda
//
// The data may be OpenAI messages JSONL, ShareGPT, Alpaca, PLLuMIC JSON or
// Parquet (detected). Each conversation is rendered with the model's chat
// template; only the assistant turns are trained, and sequences are packed
// into rows of --max-len tokens. Ctrl-C writes a checkpoint; rerun with
// --resume to continue.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

const usage = `lora-finetune --model DIR --data FILE [--data FILE ...] --out DIR [flags]

Fine-tunes a Hugging Face model folder with LoRA adapters on chat data
(assistant-only loss, packed rows) and writes OUT/final: a PEFT adapter with
the tokenizer files, or the merged model with --merge.

Flags:
`

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	model, out, device, targets string
	data                        files
	rank, maxLen, batch, accum  int
	epochs, maxSteps            int
	alpha, lr                   float64
	merge, resume               bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("lora-finetune", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c config
	fs.StringVar(&c.model, "model", "", "Hugging Face model folder (config.json, safetensors, tokenizer files); required")
	fs.Var(&c.data, "data", "chat data file (repeatable); required")
	fs.StringVar(&c.out, "out", "", "output folder: checkpoint-STEP/, final/, metrics.jsonl; required")
	fs.IntVar(&c.rank, "rank", 16, "LoRA rank")
	fs.Float64Var(&c.alpha, "alpha", 32, "LoRA alpha")
	fs.StringVar(&c.targets, "targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", "comma-separated modules to adapt")
	fs.Float64Var(&c.lr, "lr", 2e-4, "peak learning rate")
	fs.IntVar(&c.epochs, "epochs", 2, "passes over the data")
	fs.IntVar(&c.maxSteps, "max-steps", 0, "stop after this many optimizer steps (0: --epochs decides)")
	fs.IntVar(&c.maxLen, "max-len", 2048, "row length in tokens; longer conversations are dropped")
	fs.IntVar(&c.batch, "batch-size", 1, "rows per micro-batch")
	fs.IntVar(&c.accum, "grad-accum", 8, "micro-batches per optimizer step")
	fs.StringVar(&c.device, "device", "cpu", "cpu, cuda or cuda:N (bf16 weights, fp32 adapters and optimizer)")
	fs.BoolVar(&c.merge, "merge", false, "write the merged full model to OUT/final instead of the adapter")
	fs.BoolVar(&c.resume, "resume", false, "continue from the newest checkpoint in --out")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "lora-finetune: %v (see --help)\n", err)
		return 2
	}
	c.data = append(c.data, fs.Args()...)
	switch {
	case c.model == "" || c.out == "" || len(c.data) == 0:
		fmt.Fprintln(stderr, "lora-finetune: --model, --data and --out are required (see --help)")
		return 2
	case c.device != "cpu" && c.device != "cuda" && !strings.HasPrefix(c.device, "cuda:"):
		fmt.Fprintf(stderr, "lora-finetune: --device %q: want cpu, cuda or cuda:N\n", c.device)
		return 2
	case c.rank < 1 || c.maxLen < 2 || c.batch < 1 || c.accum < 1 || c.lr <= 0:
		fmt.Fprintln(stderr, "lora-finetune: --rank, --max-len, --batch-size, --grad-accum and --lr must be positive")
		return 2
	}
	if err := finetune(ctx, c, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "lora-finetune: %v\n", err)
		return 1
	}
	return 0
}

func finetune(ctx context.Context, c config, stdout, stderr io.Writer) error {
	opts := train.ModelOptions{Device: c.device}
	if c.device != "cpu" {
		opts.DType = "bf16" // fp32 adapters and optimizer state all the same
	}
	p, err := train.Open(c.model, train.OpenOptions{ModelOptions: opts})
	if err != nil {
		return err
	}
	defer p.Drop()
	m, tok := p.Model, p.Tokenizer
	b, err := tokenize.NewSFTBuilder(tok, tokenize.SFTOptions{MaxLen: c.maxLen})
	if err != nil {
		return err
	}
	seqs, st, err := b.BuildFiles(ctx, c.data...)
	if err != nil {
		return err
	}
	dropped := st.TooLong
	if len(seqs) == 0 {
		return fmt.Errorf("no conversation fits --max-len %d (%d dropped)", c.maxLen, dropped)
	}
	fmt.Fprintf(stderr, "%d conversations, %d longer than %d tokens dropped; the first as trained:\n%s\n", len(seqs), dropped, c.maxLen, tokenize.Dump(tok, seqs[0]))
	rows, err := tokenize.Pack(seqs, c.maxLen)
	if err != nil {
		return err
	}

	if err := train.ApplyLoRA(m, train.LoRAConfig{Rank: c.rank, Alpha: c.alpha, Dropout: 0.05, TargetModules: strings.Split(c.targets, ",")}); err != nil {
		return err
	}
	m.SetTraining(true)

	cfg := train.DefaultTrainerConfig()
	cfg.OutDir, cfg.Epochs, cfg.MaxSteps, cfg.LR = c.out, c.epochs, c.maxSteps, c.lr
	cfg.BatchSize, cfg.GradAccum, cfg.Resume = c.batch, c.accum, c.resume
	mode := train.ExportAdapter
	if c.merge {
		mode = train.ExportMerged
	}
	cfg.Export = func(dir string) error { return p.Export(dir, mode) }
	tr, err := train.NewTrainer(cfg, m.NamedParameters(), train.NewLMObjective(m, rows, p.PadID()), nil)
	if err != nil {
		return err
	}
	sum, err := tr.Run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d steps, final loss %.4f\n%s: %s\n", sum.Steps, sum.FinalLoss, map[bool]string{true: "merged model", false: "adapter"}[c.merge], sum.Final)
	return nil
}
