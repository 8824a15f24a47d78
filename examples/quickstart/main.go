// Command quickstart runs pltune's seed pipeline end to end on the embedded
// Polish samples: it audits the instruction corpus, trains a byte-level BPE
// tokenizer, pre-trains a tiny Llama from scratch on raw Polish text (CPT),
// fine-tunes it on the instruction mix (SFT), evaluates it, aligns it with
// ORPO on the preference pairs, evaluates it again and writes a report.
//
//	go run ./examples/quickstart                 # 4–7 minutes on 2 shared CPU cores (BENCHMARKS.md)
//	go run ./examples/quickstart --fast          # a one-minute smoke version
//	go run ./examples/quickstart --model DIR     # a real HF model folder, with LoRA
//
// Everything lands in --out (default out/quickstart): tokenizer/, one folder
// per stage (cpt/, sft/, orpo/, each with final/ in the Hugging Face layout
// and metrics.jsonl), eval/ (before/, after/, the comparison), losses.png and
// report.md. Ctrl-C stops the running stage after writing a checkpoint; the
// stages finished before it keep their final models.
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
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `quickstart [--fast] [--model DIR] [--out DIR] [flags]

Runs the seed pipeline on pltune's embedded Polish samples: corpus audit,
tokenizer training, continual pre-training of a tiny Llama from scratch,
SFT, evaluation, ORPO, evaluation again, and a Markdown report with charts.

With --model DIR the same stages run on a Hugging Face model folder with
LoRA adapters (rank --lora-rank), using the model's own tokenizer; the
tokenizer training and the from-scratch initialisation are skipped.

Flags:
`

// run is main without the process: it returns the exit code (0 done, 1 the
// pipeline failed or was interrupted, 2 bad usage).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o options
	fs.StringVar(&o.out, "out", "out/quickstart", "output folder (its stage folders are replaced)")
	fs.StringVar(&o.model, "model", "", "Hugging Face model folder to fine-tune with LoRA instead of a tiny model from scratch")
	fs.BoolVar(&o.fast, "fast", false, "a smoke version of about a minute: smaller model, fewer steps, a few evaluation items")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the corpus mix and split, initialisation and data order")
	fs.IntVar(&o.loraRank, "lora-rank", 16, "LoRA rank with --model")
	fs.StringVar(&o.device, "device", "cpu", "cpu, cuda or cuda:N (bf16 weights; needs a CUDA libtorch, see make setup)")
	fs.BoolVar(&o.quiet, "quiet", false, "print only where the report is")
	fs.BoolVar(&o.gradCheckpointing, "gradient-checkpointing", false, "recompute each decoder layer in backward instead of keeping its activations (less memory)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "quickstart: %v (see --help)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "quickstart: unexpected argument %q (see --help)\n", fs.Arg(0))
		return 2
	}
	if o.device != "cpu" && o.device != "cuda" && !strings.HasPrefix(o.device, "cuda:") {
		fmt.Fprintf(stderr, "quickstart: --device %q: want cpu, cuda or cuda:N\n", o.device)
		return 2
	}
	if o.loraRank < 1 {
		fmt.Fprintf(stderr, "quickstart: --lora-rank %d: want at least 1\n", o.loraRank)
		return 2
	}
	log := stdout
	if o.quiet {
		log = io.Discard
	}
	report, err := pipeline(ctx, o, log)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintf(stderr, "quickstart: interrupted; finished stages are in %s\n", o.out)
		} else {
			fmt.Fprintf(stderr, "quickstart: %v\n", err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "report: %s\n", report)
	return 0
}
