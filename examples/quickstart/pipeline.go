package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pltune/pltune/align"
	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/corpus/samples"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

// options are the command line's settings.
type options struct {
	out, model string
	device     string
	fast       bool
	seed       int64
	loraRank   int
	quiet      bool
	// gradCheckpointing recomputes each decoder layer in backward.
	gradCheckpointing bool
}

// sizes fix the model, the steps and the evaluation subset. The full plan
// fits the 10-minute budget on 2 CPU cores; fast is the smoke test's.
type sizes struct {
	vocab                         int
	hidden, layers, heads, mlp    int
	seqLen, orpoLen               int
	batch                         int
	cptSteps, sftSteps, orpoSteps int
	orpoPairs                     int // 0: all
	cptLR, sftLR, orpoLR          float64
	evalOpenQA, evalRefusal       int
	evalVerbosity, evalMC         int
	maxTokens                     int
}

func planFor(o options) sizes {
	if o.fast {
		return sizes{
			vocab: 768, hidden: 64, layers: 2, heads: 4, mlp: 172,
			seqLen: 384, orpoLen: 384, batch: 4,
			cptSteps: 30, sftSteps: 30, orpoSteps: 18, orpoPairs: 24,
			cptLR: 3e-3, sftLR: 2e-3, orpoLR: 3e-3,
			evalOpenQA: 4, evalRefusal: 4, evalVerbosity: 2, evalMC: 8, maxTokens: 8,
		}
	}
	s := sizes{
		vocab: 3072, hidden: 192, layers: 4, heads: 6, mlp: 512,
		seqLen: 512, orpoLen: 512, batch: 4,
		cptSteps: 180, sftSteps: 140, orpoSteps: 80,
		cptLR: 2e-3, sftLR: 1e-3, orpoLR: 5e-4,
		evalOpenQA: 24, evalRefusal: 24, evalVerbosity: 8, evalMC: 0, maxTokens: 24,
	}
	if o.model != "" {
		// A real model is far slower per step and already knows language:
		// fewer, shorter steps at LoRA learning rates.
		s.batch, s.orpoLen = 2, 1024
		s.cptSteps, s.sftSteps, s.orpoSteps = 40, 60, 30
		s.cptLR, s.sftLR, s.orpoLR = 2e-4, 2e-4, 5e-5
		s.maxTokens = 48
	}
	return s
}

// stageRun is what the report needs of a training stage.
type stageRun struct {
	Name       string
	Examples   int // rows or pairs
	Steps      int
	Tokens     int
	Seconds    float64
	Losses     []float64 // per optimizer step
	EvalLoss   *float64
	Final      string
	MetricsLog string
}

func (s *stageRun) firstLoss() float64 { return s.Losses[0] }
func (s *stageRun) lastLoss() float64  { return s.Losses[len(s.Losses)-1] }

// pipeline runs every stage and returns the report's path.
func pipeline(ctx context.Context, o options, log io.Writer) (string, error) {
	start := time.Now()
	z := planFor(o)
	for _, d := range []string{"tokenizer", "cpt", "sft", "orpo", "eval", "losses.png", "report.md"} {
		if err := os.RemoveAll(filepath.Join(o.out, d)); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return "", err
	}
	rep := &summary{Options: o, Sizes: z}

	fmt.Fprintln(log, "[1/8] corpus: reading the embedded samples")
	aud, err := auditCorpus(ctx, o.seed)
	if err != nil {
		return "", err
	}
	rep.Audit = aud
	fmt.Fprintf(log, "      %d samples; mix keeps %d (converted sources capped at %d); split %d train / %d validation\n",
		aud.Stats.Samples, len(aud.Mix), convertedCap, len(aud.Train), len(aud.Valid))
	pretrain, err := pretrainTexts(ctx)
	if err != nil {
		return "", err
	}

	var tok *tokenize.Tokenizer
	tokDir := o.model
	if o.model == "" {
		fmt.Fprintf(log, "[2/8] tokenizer: training byte-level BPE, vocabulary %d\n", z.vocab)
		tokDir = filepath.Join(o.out, "tokenizer")
		t0 := time.Now()
		tok, err = trainTokenizer(ctx, tokDir, z.vocab, pretrain, aud.Samples)
		if err != nil {
			return "", err
		}
		rep.TokenizerSeconds = time.Since(t0).Seconds()
	} else {
		fmt.Fprintf(log, "[2/8] tokenizer: the model's own (%s)\n", o.model)
		if tok, err = tokenize.Load(o.model); err != nil {
			return "", err
		}
	}
	rep.TokenizerDir, rep.Vocab = tokDir, tok.VocabSize()
	rep.CharsPerToken = charsPerToken(tok, pretrain)

	exp, err := openModel(o, z, tok, tokDir)
	if err != nil {
		return "", err
	}
	defer exp.Drop()
	m := exp.Model
	rep.Params = countParams(m)

	fmt.Fprintf(log, "[3/8] cpt: continual pre-training on %d documents of raw Polish text\n", len(pretrain))
	rows, err := pretrainRows(ctx, tok, pretrain, z.seqLen)
	if err != nil {
		return "", err
	}
	cpt, err := runStage(ctx, log, "cpt", o, z.cptSteps, z.cptLR, z.batch, train.NewLMObjective(m, rows, tok.PadID()), nil, m, exp)
	rep.Stages = append(rep.Stages, cpt)
	if err != nil {
		return "", err
	}

	fmt.Fprintf(log, "[4/8] sft: %d training conversations, assistant-only labels, packed into rows of %d tokens\n", len(aud.Train), z.seqLen)
	trainRows, dumped, dropped, err := sftRows(ctx, tok, aud.Train, z.seqLen)
	if err != nil {
		return "", err
	}
	validRows, _, _, err := sftRows(ctx, tok, aud.Valid, z.seqLen)
	if err != nil {
		return "", err
	}
	rep.SFTDropped, rep.SFTDump = dropped, dumped
	sft, err := runStage(ctx, log, "sft", o, z.sftSteps, z.sftLR, z.batch,
		train.NewLMObjective(m, trainRows, tok.PadID()), train.NewLMObjective(m, validRows, tok.PadID()), m, exp)
	rep.Stages = append(rep.Stages, sft)
	if err != nil {
		return "", err
	}

	tasks, err := evalTasks(z)
	if err != nil {
		return "", err
	}
	fmt.Fprintln(log, "[5/8] eval: before alignment")
	if rep.Before, err = evaluate(ctx, log, m, tok, "sft", tasks, z); err != nil {
		return "", err
	}

	pairs, droppedPairs, err := preferenceExamples(ctx, tok, z.orpoLen)
	if err != nil {
		return "", err
	}
	if z.orpoPairs > 0 && len(pairs) > z.orpoPairs {
		// The smoke run revisits a few pairs for several epochs, so that
		// its short ORPO curve falls for a reason one can check.
		pairs = pairs[:z.orpoPairs]
	}
	rep.PairsDropped = droppedPairs
	fmt.Fprintf(log, "[6/8] orpo: %d preference pairs (%d longer than %d tokens left out)\n", len(pairs), droppedPairs, z.orpoLen)
	orpo, err := align.NewORPO(m, pairs, tok.PadID(), align.ORPOConfig{})
	if err != nil {
		return "", err
	}
	pref, err := runStage(ctx, log, "orpo", o, z.orpoSteps, z.orpoLR, z.batch, orpo, nil, m, exp)
	rep.Stages = append(rep.Stages, pref)
	if err != nil {
		return "", err
	}

	fmt.Fprintln(log, "[7/8] eval: after alignment")
	if rep.After, err = evaluate(ctx, log, m, tok, "orpo", tasks, z); err != nil {
		return "", err
	}

	fmt.Fprintln(log, "[8/8] report")
	rep.TotalSeconds = time.Since(start).Seconds()
	path, err := rep.write(o.out)
	if err != nil {
		return "", err
	}
	return path, nil
}

// convertedCap is the per-source cap on converted samples: low enough that
// the larger invented sources lose samples, so the report shows the
// mechanism PLLuMIC uses at 1,000.
const convertedCap = 12

// audit is the corpus stage's outcome.
type audit struct {
	Samples      []corpus.Sample
	Stats        *corpus.Stats
	MixReport    *corpus.MixReport
	Mix          []corpus.Sample
	Train, Valid []corpus.Sample
}

func auditCorpus(ctx context.Context, seed int64) (*audit, error) {
	var all []corpus.Sample
	for s, err := range samples.Samples(ctx) {
		if err != nil {
			return nil, err
		}
		all = append(all, s)
	}
	st, err := corpus.ComputeStats(ctx, slicePairs(all), nil)
	if err != nil {
		return nil, err
	}
	mix, mr, err := corpus.Mix(all, corpus.MixOptions{SourceCap: map[corpus.Origin]int{corpus.OriginConverted: convertedCap}, Seed: uint64(seed)})
	if err != nil {
		return nil, err
	}
	tr, va, err := corpus.Split(mix, corpus.SplitOptions{Validation: 0.05, Seed: uint64(seed)})
	if err != nil {
		return nil, err
	}
	return &audit{Samples: all, Stats: st, MixReport: mr, Mix: mix, Train: tr, Valid: va}, nil
}

func slicePairs[T any](xs []T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for _, x := range xs {
			if !yield(x, nil) {
				return
			}
		}
	}
}

// pretrainTexts reads the embedded raw text, one JSON object per line.
func pretrainTexts(ctx context.Context) ([]string, error) {
	var out []string
	for d, err := range samples.Documents(ctx) {
		if err != nil {
			return nil, err
		}
		out = append(out, d.Text)
	}
	return out, nil
}

// trainTokenizer learns the vocabulary from the raw text and every message
// of the instruction samples, writes it to dir and loads it back, so the
// pipeline uses exactly what the checkpoints ship.
func trainTokenizer(ctx context.Context, dir string, vocab int, texts []string, ss []corpus.Sample) (*tokenize.Tokenizer, error) {
	all := func(yield func(string) bool) {
		for _, t := range texts {
			if !yield(t) {
				return
			}
		}
		for i := range ss {
			for _, m := range ss[i].Conversation() {
				if !yield(m.Content) {
					return
				}
			}
		}
	}
	tt, err := tokenize.TrainBPE(ctx, all, tokenize.BPETrainOptions{VocabSize: vocab})
	if err != nil {
		return nil, err
	}
	if err := tt.WriteDir(dir); err != nil {
		return nil, err
	}
	return tokenize.Load(dir)
}

func charsPerToken(tok *tokenize.Tokenizer, texts []string) float64 {
	chars, toks := 0, 0
	for _, t := range texts {
		chars += len([]rune(t))
		toks += tok.CountTokens(t)
	}
	if toks == 0 {
		return 0
	}
	return float64(chars) / float64(toks)
}

// openModel builds the tiny Llama for the trained tokenizer, or loads
// --model and puts LoRA adapters on it; the one adapter set trains through
// every stage, so each stage's adapter applies to the original base.
func openModel(o options, z sizes, tok *tokenize.Tokenizer, tokDir string) (*train.Pretrained, error) {
	opts := train.ModelOptions{Device: o.device, Seed: o.seed, GradientCheckpointing: o.gradCheckpointing}
	if o.device != "cpu" {
		opts.DType = "bf16" // fp32 adapters and optimizer state all the same
	}
	if o.model != "" {
		p, err := train.Open(o.model, train.OpenOptions{ModelOptions: opts})
		if err != nil {
			return nil, err
		}
		if err := train.ApplyLoRA(p.Model, train.LoRAConfig{Rank: o.loraRank, Alpha: 2 * float64(o.loraRank), Dropout: 0.05,
			TargetModules: []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}); err != nil {
			p.Drop()
			return nil, err
		}
		p.Model.SetTraining(true)
		return p, nil
	}
	bos, _ := tok.TokenToID(tokenize.TrainedBOS)
	eos, _ := tok.TokenToID(tokenize.TrainedEOS)
	cfg := map[string]any{
		"architectures":           []string{train.ArchLlama},
		"model_type":              "llama",
		"vocab_size":              tok.VocabSize(),
		"hidden_size":             z.hidden,
		"intermediate_size":       z.mlp,
		"num_hidden_layers":       z.layers,
		"num_attention_heads":     z.heads,
		"num_key_value_heads":     z.heads / 2,
		"max_position_embeddings": max(z.seqLen, z.orpoLen),
		"rms_norm_eps":            1e-5,
		"rope_theta":              10000.0,
		"tie_word_embeddings":     true,
		"bos_token_id":            bos,
		"eos_token_id":            eos,
		"torch_dtype":             "float32",
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	c, err := train.ParseConfig(b)
	if err != nil {
		return nil, err
	}
	m, err := train.NewModel(c, opts)
	if err != nil {
		return nil, err
	}
	m.SetTraining(true)
	return &train.Pretrained{Model: m, Tokenizer: tok, TokenizerDir: tokDir}, nil
}

func countParams(m *train.Model) (total int64) {
	for _, p := range m.NamedParameters() {
		n := int64(1)
		for _, d := range p.T.MustSize() {
			n *= d
		}
		total += n
	}
	return total
}

func pretrainRows(ctx context.Context, tok *tokenize.Tokenizer, texts []string, rowLen int) ([]tokenize.PackedRow, error) {
	docs := func(yield func(string) bool) {
		for _, t := range texts {
			if !yield(t) {
				return
			}
		}
	}
	var rows []tokenize.PackedRow
	for row, err := range tokenize.PretrainRows(ctx, tok, docs, tokenize.PretrainOptions{RowLen: rowLen}) {
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, errors.New("cpt: the pre-training text fills no row")
	}
	return rows, nil
}

// sftRows builds the assistant-only sequences of ss and packs them; it
// returns the first sequence as trained (Dump) and how many were dropped as
// too long.
func sftRows(ctx context.Context, tok *tokenize.Tokenizer, ss []corpus.Sample, maxLen int) ([]tokenize.PackedRow, string, int, error) {
	b, err := tokenize.NewSFTBuilder(tok, tokenize.SFTOptions{MaxLen: maxLen})
	if err != nil {
		return nil, "", 0, err
	}
	seqs, st, err := b.BuildAll(ctx, slicePairs(ss))
	if err != nil {
		return nil, "", 0, err
	}
	if len(seqs) == 0 {
		return nil, "", 0, fmt.Errorf("sft: all %d samples are longer than %d tokens", len(ss), maxLen)
	}
	rows, err := tokenize.Pack(seqs, maxLen)
	if err != nil {
		return nil, "", 0, err
	}
	return rows, tokenize.Dump(tok, seqs[0]), st.TooLong, nil
}

// preferenceExamples builds the embedded preference pairs; it returns how
// many were dropped as too long or without response tokens.
func preferenceExamples(ctx context.Context, tok *tokenize.Tokenizer, maxLen int) ([]tokenize.PreferenceExample, int, error) {
	b, err := tokenize.NewSFTBuilder(tok, tokenize.SFTOptions{MaxLen: maxLen})
	if err != nil {
		return nil, 0, err
	}
	out, st, err := align.BuildPairs(ctx, b, samples.Pairs(ctx), 0)
	if err != nil {
		return nil, 0, err
	}
	if len(out) == 0 {
		return nil, 0, fmt.Errorf("orpo: no preference pair fits %d tokens", maxLen)
	}
	return out, st.TooLong + st.NoResponse, nil
}

// runStage trains obj for steps optimizer steps into out/name and prints a
// progress line about ten times. The returned stageRun holds what ran even
// when the stage fails or is interrupted.
func runStage(ctx context.Context, log io.Writer, name string, o options, steps int, lr float64, batch int,
	obj, ev train.Objective, m *train.Model, exp *train.Pretrained) (*stageRun, error) {
	dir := filepath.Join(o.out, name)
	run := &stageRun{Name: name, Examples: obj.Len(), MetricsLog: filepath.Join(dir, "metrics.jsonl")}
	batch = min(batch, obj.Len())
	cfg := train.DefaultTrainerConfig()
	cfg.OutDir, cfg.MaxSteps, cfg.LR, cfg.BatchSize, cfg.Seed = dir, steps, lr, batch, o.seed
	cfg.WarmupRatio, cfg.MinLRRatio = 0.1, 0.1
	cfg.KeepLast = 1
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Progress = io.Discard
	// A stage's final model: the PEFT adapter with the tokenizer files
	// under LoRA, else the full model in the Hugging Face layout.
	mode := train.ExportMerged
	if m.LoRA() != nil {
		mode = train.ExportAdapter
	}
	cfg.Export = func(dir string) error { return exp.Export(dir, mode) }
	if ev != nil {
		cfg.EvalEvery = steps
	}
	every := max(1, steps/10)
	t0 := time.Now()
	cfg.OnStep = func(r train.StepRecord) {
		run.Steps, run.Tokens = r.Step, run.Tokens+r.Tokens
		run.Losses = append(run.Losses, r.Loss)
		if r.EvalLoss != nil {
			run.EvalLoss = r.EvalLoss
		}
		if r.Step%every == 0 || r.Step == steps {
			fmt.Fprintf(log, "      %-4s step %4d/%d  loss %7.4f  lr %.1e  %6.0f tok/s  %5.1fs\n",
				name, r.Step, steps, r.Loss, r.LR, r.TokensPerS, time.Since(t0).Seconds())
		}
	}
	m.SetTraining(true)
	tr, err := train.NewTrainer(cfg, m.NamedParameters(), obj, ev)
	if err != nil {
		return run, fmt.Errorf("%s: %w", name, err)
	}
	sum, err := tr.Run(ctx)
	run.Seconds = time.Since(t0).Seconds()
	m.SetTraining(false)
	if err != nil {
		return run, fmt.Errorf("%s: %w", name, err)
	}
	if len(run.Losses) == 0 {
		return run, fmt.Errorf("%s: no step ran", name)
	}
	run.Final = sum.Final
	return run, nil
}
