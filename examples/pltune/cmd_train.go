//go:build pltune_torch

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/tokstore"
	"github.com/pltune/pltune/train"
	"github.com/pltune/pltune/train/dist"
	"github.com/pltune/pltune/train/hfconfig"
	"golang.org/x/term"
)

func init() {
	register(&command{name: "pretrain", summary: "continual pre-training on raw text or token stores (CPT)", run: runPretrain})
	register(&command{name: "sft", summary: "supervised fine-tuning on chat samples or chat token stores", run: runSFT})
}

// stringList is a flag that may be repeated and also takes several values
// after one flag (--data a.jsonl b.jsonl is read as two files by the
// commands, which take the remaining arguments as more data).
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// trainFlags are the flags every training command shares (pretrain, sft,
// orpo, dpo).
type trainFlags struct {
	model, modelConfig, init string
	base                     string
	seed                     int64
	tokenizer                string
	data                     stringList
	out                      string
	epochs, maxSteps         int
	lr, warmup               float64
	batch, accum, maxLen     int
	pack                     bool
	loraRank                 int
	loraAlpha                float64
	loraDropout              float64
	loraTargets              string
	resume                   bool
	device, dtype            string
	saveEvery, evalEvery     int
	quiet                    bool
	stores                   storeFlags
	gradCheckpointing        bool
	zeroStage                int
	offloadOptimizer         bool
	// comm is the data-parallel group joined when the command runs under
	// pltune launch or torchrun; nil otherwise.
	comm train.Communicator
	// pre is the model being trained with its tokenizer and origin, set by
	// openModel; it exports final/ and the checkpoints.
	pre *train.Pretrained
}

func (f *trainFlags) register(fs *flag.FlagSet, defaultLR float64) {
	def := train.DefaultTrainerConfig()
	fs.StringVar(&f.model, "model", "", "Hugging Face model folder to start from, or a PEFT LoRA adapter folder (its training continues)")
	fs.StringVar(&f.base, "base", "", "base model folder of a --model adapter folder (default: its adapter_config.json's base_model_name_or_path)")
	fs.StringVar(&f.modelConfig, "model-config", "", "config.json of a model to build instead of --model")
	fs.StringVar(&f.init, "init", "random", "initialisation with --model-config (only: random)")
	fs.Int64Var(&f.seed, "seed", def.Seed, "seed of initialisation, data order and dropout")
	fs.StringVar(&f.tokenizer, "tokenizer", "", "tokenizer folder or tokenizer.json (default: the --model folder's, else its base's)")
	fs.Var(&f.data, "data", "training data file or token store folder (repeatable; more may follow as arguments)")
	fs.StringVar(&f.out, "out", "", "output folder: checkpoint-STEP/, final/, metrics.jsonl (required)")
	fs.IntVar(&f.epochs, "epochs", def.Epochs, "passes over the data")
	fs.IntVar(&f.maxSteps, "max-steps", 0, "stop after this many optimizer steps (0: --epochs decides)")
	fs.Float64Var(&f.lr, "lr", defaultLR, "peak learning rate (AdamW, linear warmup, cosine decay)")
	fs.Float64Var(&f.warmup, "warmup-ratio", def.WarmupRatio, "share of steps spent in warmup")
	fs.IntVar(&f.batch, "batch-size", 1, "sequences per micro-batch (per process)")
	fs.IntVar(&f.accum, "grad-accum", 1, "micro-batches per optimizer step")
	fs.IntVar(&f.maxLen, "max-len", tokenize.DefaultMaxLen, "maximum sequence (or packed row) length in tokens")
	fs.BoolVar(&f.pack, "pack", false, "pack sequences into rows of --max-len (block-diagonal attention)")
	fs.IntVar(&f.loraRank, "lora-rank", 0, "train LoRA adapters of this rank instead of all weights (0: full fine-tuning)")
	fs.Float64Var(&f.loraAlpha, "lora-alpha", 0, "LoRA alpha (default: 2 × rank)")
	fs.Float64Var(&f.loraDropout, "lora-dropout", 0.05, "LoRA dropout")
	fs.StringVar(&f.loraTargets, "lora-targets", "q_proj,k_proj,v_proj,o_proj", "comma-separated modules LoRA adapts")
	fs.BoolVar(&f.resume, "resume", false, "continue from the newest checkpoint in --out")
	fs.StringVar(&f.device, "device", "cpu", "cpu, cuda or cuda:N (under pltune launch, cuda is each process's local GPU)")
	fs.StringVar(&f.dtype, "dtype", "", "parameter precision: f32, bf16 or f16 (default: bf16 on cuda with fp32 optimizer state, f32 on cpu)")
	fs.IntVar(&f.saveEvery, "save-every", 0, "write a checkpoint every N steps (0: at the end and on Ctrl-C)")
	fs.IntVar(&f.evalEvery, "eval-every", 0, "held-out loss every N steps on 5% of the data (0: never)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar and no log lines")
	f.stores.register(fs)
	fs.BoolVar(&f.gradCheckpointing, "gradient-checkpointing", false, "keep only each layer's input and recompute the layer in backward (less memory, about one more forward pass)")
	fs.IntVar(&f.zeroStage, "zero-stage", 0, "shard over the data-parallel processes: 1 optimizer state and fp32 master weights, 2 also gradients, 3 also parameters, one layer gathered at a time (needs --gradient-checkpointing; 0: every process holds everything)")
	fs.BoolVar(&f.offloadOptimizer, "offload-optimizer", false, "keep the optimizer shard in CPU memory (with --zero-stage 1-3; for GPU runs)")
}

// check validates the flags after parsing; rest are the arguments after the
// flags, taken as more data files.
func (f *trainFlags) check(rest []string) error {
	f.data = append(f.data, rest...)
	switch {
	case f.out == "":
		return usagef("--out is required")
	case len(f.data) == 0:
		return usagef("--data is required")
	case (f.model == "") == (f.modelConfig == ""):
		return usagef("give exactly one of --model DIR and --model-config FILE")
	case f.modelConfig != "" && f.init != "random":
		return usagef("--init %q: only random initialisation is supported", f.init)
	case f.model == "" && f.tokenizer == "":
		return usagef("--tokenizer is required with --model-config")
	case f.base != "" && f.model == "":
		return usagef("--base is for a --model adapter folder")
	case f.batch < 1 || f.accum < 1 || f.maxLen < 2 || f.epochs < 0 || f.maxSteps < 0 || f.loraRank < 0:
		return usagef("--batch-size, --grad-accum, --max-len must be positive; --epochs, --max-steps, --lora-rank not negative")
	case f.lr <= 0:
		return usagef("--lr must be positive")
	case f.zeroStage < 0 || f.zeroStage > 3:
		return usagef("--zero-stage %d: want 0, 1, 2 or 3", f.zeroStage)
	case f.zeroStage == 3 && !f.gradCheckpointing:
		return usagef("--zero-stage 3 needs --gradient-checkpointing (layers are gathered in its layer loop)")
	case f.offloadOptimizer && f.zeroStage == 0:
		return usagef("--offload-optimizer needs --zero-stage 1, 2 or 3")
	}
	if _, err := deviceOptions(f.device, f.dtype, train.ModelOptions{}); err != nil {
		return err
	}
	if f.tokenizer == "" {
		f.tokenizer = modelTokenizer(f.model, f.base)
	}
	return nil
}

// modelTokenizer is where the tokenizer of --model lives: the folder
// itself, or the base of an adapter folder that holds none.
func modelTokenizer(model, base string) string {
	if !hfconfig.IsAdapterDir(model) {
		return model
	}
	if _, err := os.Stat(filepath.Join(model, "tokenizer.json")); err == nil {
		return model
	}
	if loc, err := hfconfig.Locate(model, base); err == nil {
		return loc.ModelDir
	}
	return model // loading it names the problem
}

func (f *trainFlags) modelOptions() (train.ModelOptions, error) {
	dev := f.device
	if g, ok := f.comm.(*dist.Group); ok && dev == "cuda" {
		dev = fmt.Sprintf("cuda:%d", g.LocalRank())
	}
	return deviceOptions(dev, f.dtype, train.ModelOptions{Seed: f.seed, GradientCheckpointing: f.gradCheckpointing})
}

// deviceOptions checks --device and --dtype into opts: a GPU computes in
// bf16 unless --dtype says otherwise.
func deviceOptions(device, dtype string, opts train.ModelOptions) (train.ModelOptions, error) {
	dev, err := train.ParseDevice(device)
	if err != nil {
		return opts, usagef("--device: %v", err)
	}
	if dtype == "" && dev != "cpu" {
		dtype = "bf16"
	}
	dt, err := train.ParseDType(dtype)
	if err != nil {
		return opts, usagef("--dtype: %v", err)
	}
	opts.Device, opts.DType = dev, dt
	return opts, nil
}

// openModel joins the data-parallel group when the command was started by
// pltune launch or torchrun, then loads --model or builds --model-config,
// and applies LoRA.
func (f *trainFlags) openModel(ctx context.Context) (*train.Model, error) {
	if dist.Launched() && f.comm == nil {
		g, err := dist.Init(ctx, dist.Options{})
		if err != nil {
			return nil, err
		}
		f.comm = g
	}
	opts, err := f.modelOptions()
	if err != nil {
		return nil, err
	}
	if f.model != "" {
		oo := train.OpenOptions{ModelOptions: opts, Base: f.base, Tokenizer: f.tokenizer}
		if f.zeroStage == 3 && f.loraRank == 0 && f.comm != nil && f.comm.Size() > 1 && !f.resume {
			// Full fine-tuning under stage 3: each rank reads only its
			// piece of the weights.
			oo.Shard = train.ZeroShard{Rank: f.comm.Rank(), World: f.comm.Size()}
		}
		f.pre, err = train.Open(f.model, oo)
	} else {
		f.pre, err = f.newModel(opts)
	}
	if err != nil {
		return nil, err
	}
	m := f.pre.Model
	if lc := m.LoRA(); lc != nil {
		// An adapter folder: its adapter trains on.
		if f.loraRank > 0 && f.loraRank != lc.Rank {
			m.Drop()
			return nil, usagef("--lora-rank %d: %s is an adapter of rank %d, whose training continues; drop --lora-rank", f.loraRank, f.model, lc.Rank)
		}
	} else if f.loraRank > 0 {
		alpha := f.loraAlpha
		if alpha == 0 {
			alpha = 2 * float64(f.loraRank)
		}
		err := train.ApplyLoRA(m, train.LoRAConfig{Rank: f.loraRank, Alpha: alpha, Dropout: f.loraDropout, TargetModules: strings.Split(f.loraTargets, ",")})
		if err != nil {
			m.Drop()
			return nil, err
		}
	}
	m.SetTraining(true)
	return m, nil
}

func (f *trainFlags) trainerConfig(env *cliEnv) train.TrainerConfig {
	cfg := train.DefaultTrainerConfig()
	cfg.OutDir, cfg.Epochs, cfg.MaxSteps, cfg.LR, cfg.WarmupRatio = f.out, f.epochs, f.maxSteps, f.lr, f.warmup
	cfg.BatchSize, cfg.GradAccum, cfg.Seed, cfg.Resume = f.batch, f.accum, f.seed, f.resume
	cfg.SaveEvery, cfg.EvalEvery = f.saveEvery, f.evalEvery
	cfg.Comm = f.comm
	cfg.ZeroStage, cfg.OffloadOptimizer = f.zeroStage, f.offloadOptimizer
	if f.warmup == 0 {
		cfg.WarmupRatio = -1 // the library reads 0 as its default
	}
	if !f.quiet {
		cfg.Logger = slog.New(slog.NewTextHandler(env.stderr, nil))
		if fl, ok := env.stderr.(*os.File); ok && term.IsTerminal(int(fl.Fd())) {
			cfg.Progress = fl
		}
	}
	return cfg
}

// newModel builds --model-config with random weights.
func (f *trainFlags) newModel(opts train.ModelOptions) (*train.Pretrained, error) {
	tok, err := tokenize.Load(f.tokenizer)
	if err != nil {
		return nil, err
	}
	cfg, err := train.LoadConfig(f.modelConfig)
	if err != nil {
		return nil, err
	}
	m, err := train.NewModel(cfg, opts)
	if err != nil {
		return nil, err
	}
	tokDir := f.tokenizer
	if st, err := os.Stat(tokDir); err == nil && !st.IsDir() {
		tokDir = filepath.Dir(tokDir)
	}
	return &train.Pretrained{Model: m, Tokenizer: tok, TokenizerDir: tokDir}, nil
}

// export writes the model for OutDir/final: the PEFT adapter under LoRA,
// else the full model in Hugging Face layout, with the tokenizer files.
func (f *trainFlags) export() func(string) error {
	mode := train.ExportMerged
	if f.pre.Model.LoRA() != nil {
		mode = train.ExportAdapter
	}
	return func(dir string) error { return f.pre.Export(dir, mode) }
}

// heldOutShare is the share of rows or pairs --eval-every holds out
// (tokenize.HeldOut: at least one, spread over the data by --seed).
const heldOutShare = 0.05

// heldOutFrac is the share to hold out: none without --eval-every.
func (f *trainFlags) heldOutFrac() float64 {
	if f.evalEvery <= 0 {
		return 0
	}
	return heldOutShare
}

// runTraining runs the loop over rows and reports where the model went.
func (f *trainFlags) runTraining(ctx context.Context, env *cliEnv, m *train.Model, tok *tokenize.Tokenizer, rows []tokenize.PackedRow) error {
	trainRows, evalRows := tokenize.SplitHeldOut(rows, f.heldOutFrac(), f.seed)
	obj := train.NewLMObjective(m, trainRows, tok.PadID())
	var ev train.Objective
	if evalRows != nil {
		ev = train.NewLMObjective(m, evalRows, tok.PadID())
	}
	cfg := f.trainerConfig(env)
	cfg.Export = f.export()
	cfg.Model = m // ZeRO stage 3 gathers its layers
	tr, err := train.NewTrainer(cfg, m.NamedParameters(), obj, ev)
	if err != nil {
		return err
	}
	sum, err := tr.Run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "trained %d steps, final loss %.4f\nmodel: %s\nmetrics: %s\n", sum.Steps, sum.FinalLoss, sum.Final, filepath.Join(f.out, "metrics.jsonl"))
	return nil
}

const pretrainUsage = `pretrain (--model DIR | --model-config FILE --init random) [--tokenizer PATH] --data FILE... --out DIR [flags]

Continual pre-training: trains next-token prediction on every token of raw
documents laid end to end with EOS between them and cut into rows of
--max-len tokens (each document fragment its own attention segment).
Data files: .jsonl with a "text" field per line, or plain text where a blank
line separates documents; or token stores (pltune corpus tokenize), read
from disk as training goes, so memory does not grow with the corpus;
several stores are mixed by --data-weights and --data-caps.`

func runPretrain(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "pretrain", pretrainUsage)
	var f trainFlags
	f.register(fs, 1e-4)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(fs.Args()); err != nil {
		return err
	}
	tok, err := tokenize.Load(f.tokenizer)
	if err != nil {
		return err
	}
	if src, closeStores, ok, err := f.openStores(env, tokstore.TypeText, f.tokenizer); err != nil {
		return err
	} else if ok {
		defer closeStores()
		m, err := f.openModel(ctx)
		if err != nil {
			return err
		}
		defer m.Drop()
		return f.runTrainingFrom(ctx, env, m, tok, src)
	}
	var rows []tokenize.PackedRow
	for row, err := range tokenize.PretrainRowsFrom(ctx, tok, corpus.ReadText(ctx, f.data...), tokenize.PretrainOptions{RowLen: f.maxLen, KeepLast: true}) {
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return errors.New("no text in the data files")
	}
	m, err := f.openModel(ctx)
	if err != nil {
		return err
	}
	defer m.Drop()
	return f.runTraining(ctx, env, m, tok, rows)
}

const sftUsage = `sft (--model DIR | --model-config FILE --init random) [--tokenizer PATH] --data FILE... --out DIR [flags]

Supervised fine-tuning on chat samples (PLLuMIC JSON, OpenAI messages JSONL,
ShareGPT, Alpaca, Parquet; the format is detected): each conversation is
rendered with the tokenizer's chat template and only the assistant turns
and their end-of-turn tokens are trained. Samples longer than --max-len are
dropped and counted. Defaults follow the PLLuM paper: AdamW, lr 1e-5,
cosine schedule, 3 epochs.`

func runSFT(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "sft", sftUsage)
	var f trainFlags
	f.register(fs, train.DefaultTrainerConfig().LR)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(fs.Args()); err != nil {
		return err
	}
	tok, err := tokenize.Load(f.tokenizer)
	if err != nil {
		return err
	}
	if src, closeStores, ok, err := f.openStores(env, tokstore.TypeChat, f.tokenizer); err != nil {
		return err
	} else if ok {
		defer closeStores()
		if row, err := src.Row(0); err == nil && !f.quiet {
			fmt.Fprintf(env.stderr, "%d rows; the first one as trained:\n%s\n", src.Len(), tokenize.Dump(tok, tokenize.Sequence{IDs: row.IDs, Labels: row.Labels}))
		}
		m, err := f.openModel(ctx)
		if err != nil {
			return err
		}
		defer m.Drop()
		return f.runTrainingFrom(ctx, env, m, tok, src)
	}
	b, err := tokenize.NewSFTBuilder(tok, tokenize.SFTOptions{MaxLen: f.maxLen})
	if err != nil {
		return err
	}
	seqs, st, err := b.BuildFiles(ctx, f.data...)
	if err != nil {
		return err
	}
	dropped := st.TooLong
	if len(seqs) == 0 {
		return fmt.Errorf("no trainable samples (%d dropped as longer than --max-len %d)", dropped, f.maxLen)
	}
	if !f.quiet {
		fmt.Fprintf(env.stderr, "%d samples, %d dropped as longer than %d tokens; the first one as trained:\n%s\n", len(seqs), dropped, f.maxLen, tokenize.Dump(tok, seqs[0]))
	}
	rows, err := tokenize.Rows(seqs, f.maxLen, f.pack)
	if err != nil {
		return err
	}
	m, err := f.openModel(ctx)
	if err != nil {
		return err
	}
	defer m.Drop()
	return f.runTraining(ctx, env, m, tok, rows)
}
