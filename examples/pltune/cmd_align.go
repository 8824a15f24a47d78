//go:build pltune_torch

package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pltune/pltune/align"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

func init() {
	register(&command{name: "orpo", summary: "preference alignment with ORPO (NLL + odds ratio, no reference model)", run: runORPO})
	register(&command{name: "dpo", summary: "preference alignment with DPO (sigmoid loss against a reference model)", run: runDPO})
}

// defaultAlignLR is TRL's default learning rate for ORPO and DPO.
const defaultAlignLR = 1e-6

// alignFlags are the training flags plus what preference objectives add.
type alignFlags struct {
	trainFlags
	beta      float64
	minMargin float64
}

func (f *alignFlags) register(fs *flag.FlagSet, betaHelp string) {
	f.trainFlags.register(fs, defaultAlignLR)
	fs.Float64Var(&f.beta, "beta", 0.1, betaHelp)
	fs.Float64Var(&f.minMargin, "min-margin", 0, "keep rated pairs whose chosen rating exceeds the rejected one by at least this much; rated lists pair responses this far apart")
}

const alignDataHelp = `Data files: preference pairs (PLLuM-Align / TRL JSONL with chosen and
rejected message lists and optional chosen_rating/rejected_rating; prompt/
chosen/rejected string triples; their Parquet forms), or ranked responses,
one JSON object a line:
  {"id": "q1", "prompt": "…" | [messages],
   "responses": [{"content": "…", "rank": 1}, {"content": "…", "rank": 2}, …]}
where each response is paired with each worse-ranked one, or with "rating"
instead of "rank", where each is paired with each rated lower by at least
--min-margin. Prompt and responses are rendered with the tokenizer's chat
template; only the response tokens are scored. Pairs longer than --max-len
are dropped and counted. --batch-size counts pairs (two sequences each); the
loss is the mean over the pairs of a step. --lr defaults to TRL's 1e-6.`

const orpoUsage = `orpo (--model DIR | --model-config FILE --init random) [--tokenizer PATH] --data FILE... --out DIR [flags]

ORPO (Hong et al. 2024): one loss of the chosen response's NLL and
λ·log σ(log-odds of chosen over rejected), per-response mean log-probs, both
responses in one forward pass; λ is --beta. The NLL covers the chosen
response only (LLaMA-Factory); --nll-on-prompt adds its prompt (TRL). Metrics per step in
metrics.jsonl: rewards_chosen/rejected, reward_margin, reward_accuracy,
log_odds, nll_loss, logps_chosen/rejected.

` + alignDataHelp

const dpoUsage = `dpo (--model DIR | --model-config FILE --init random) [--tokenizer PATH] --data FILE... --out DIR [--ref-model DIR] [flags]

DPO with the sigmoid loss −log σ(β·((πc − refc) − (πr − refr))) on summed
response log-probs. The reference log-probs are computed once before
training: from --ref-model, else from the starting model itself (with its
new LoRA adapters switched off under --lora-rank; an adapter folder given as
--model, whose training continues, is its own reference); they are kept in
--out/reference_logps.json and reused by a run with the same pairs and
reference (--resume). Metrics per step in metrics.jsonl: rewards_chosen/
rejected, reward_margin, reward_accuracy, logps_chosen/rejected.

` + alignDataHelp

func runORPO(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "orpo", orpoUsage)
	var f alignFlags
	f.register(fs, "λ, the weight of the odds-ratio term")
	var nllOnPrompt bool
	fs.BoolVar(&nllOnPrompt, "nll-on-prompt", false, "NLL term over the chosen prompt too (TRL); default: response only")
	tok, pairs, m, err := f.start(ctx, env, fs, args, " (λ 0 would be plain SFT)")
	if err != nil {
		return err
	}
	defer m.Drop()
	trainPairs, evalPairs := tokenize.SplitHeldOut(pairs, f.heldOutFrac(), f.seed)
	cfg := align.ORPOConfig{Beta: f.beta, NLLOnPrompt: nllOnPrompt}
	obj, err := align.NewORPO(m, trainPairs, tok.PadID(), cfg)
	if err != nil {
		return err
	}
	var ev train.Objective
	if evalPairs != nil {
		if ev, err = align.NewORPO(m, evalPairs, tok.PadID(), cfg); err != nil {
			return err
		}
	}
	return f.runAlign(ctx, env, m, tok, obj, ev)
}

func runDPO(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "dpo", dpoUsage)
	var f alignFlags
	f.register(fs, "β, the scale of the implicit reward")
	var refDir string
	fs.StringVar(&refDir, "ref-model", "", "reference model folder or adapter folder (default: the starting model; its base under a new LoRA adapter)")
	tok, pairs, m, err := f.start(ctx, env, fs, args, "")
	if err != nil {
		return err
	}
	defer m.Drop()
	trainPairs, evalPairs := tokenize.SplitHeldOut(pairs, f.heldOutFrac(), f.seed)
	// The reference log-probs are kept in --out, so a resumed run reuses
	// them; the file says which pairs and which reference they belong to.
	ref := &align.Reference{Dir: refDir, Source: "policy " + f.model + f.modelConfig, BatchSize: 2 * f.batch}
	switch {
	case refDir != "":
		ref.Source = "ref-model " + refDir
	case f.pre.AdapterDir != "":
		// Training an adapter on: the reference is the model it starts
		// from, base and adapter, scored before the first step.
		ref.Model = m
		ref.Source += " (base and adapter as loaded)"
	case f.loraRank > 0:
		ref.Source += " (LoRA adapters off)"
	}
	if !f.quiet {
		ref.Log = env.stderr
	}
	defer ref.Close()
	newDPO := func(ps []tokenize.PreferenceExample, file string) (*align.DPO, error) {
		o, err := align.NewDPO(m, ps, tok.PadID(), align.DPOConfig{Beta: f.beta})
		if err != nil {
			return nil, err
		}
		_, err = ref.Prepare(ctx, o, filepath.Join(f.out, file))
		return o, err
	}
	obj, err := newDPO(trainPairs, "reference_logps.json")
	if err != nil {
		return err
	}
	var ev train.Objective
	if evalPairs != nil {
		if ev, err = newDPO(evalPairs, "reference_logps_eval.json"); err != nil {
			return err
		}
	}
	return f.runAlign(ctx, env, m, tok, obj, ev)
}

// start is what orpo and dpo do first: parse and check the flags (betaNote
// follows the error for a β that is not positive), read the pairs, open
// the model.
func (f *alignFlags) start(ctx context.Context, env *cliEnv, fs *flag.FlagSet, args []string, betaNote string) (*tokenize.Tokenizer, []tokenize.PreferenceExample, *train.Model, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, nil, err
	}
	if err := f.check(fs.Args()); err != nil {
		return nil, nil, nil, err
	}
	if f.beta <= 0 {
		return nil, nil, nil, usagef("--beta %v: want > 0%s", f.beta, betaNote)
	}
	tok, pairs, err := f.loadPairs(ctx, env)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := f.openModel(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return tok, pairs, m, nil
}

// loadPairs reads, filters and tokenizes the preference data.
func (f *alignFlags) loadPairs(ctx context.Context, env *cliEnv) (*tokenize.Tokenizer, []tokenize.PreferenceExample, error) {
	if f.minMargin < 0 {
		return nil, nil, usagef("--min-margin %v: want ≥ 0", f.minMargin)
	}
	tok, err := tokenize.Load(f.tokenizer)
	if err != nil {
		return nil, nil, err
	}
	b, err := tokenize.NewSFTBuilder(tok, tokenize.SFTOptions{MaxLen: f.maxLen})
	if err != nil {
		return nil, nil, err
	}
	out, st, err := align.LoadPairs(ctx, b, f.data, f.minMargin)
	if err != nil {
		return nil, nil, err
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("no trainable pairs: %d read, %d below --min-margin %g, %d longer than --max-len %d, %d without response tokens", st.Read, st.BelowMargin, f.minMargin, st.TooLong, f.maxLen, st.NoResponse)
	}
	if !f.quiet {
		fmt.Fprintf(env.stderr, "%d pairs (%d read; dropped: %d below --min-margin, %d longer than %d tokens, %d without response tokens); the first one as scored:\nchosen:\n%s\nrejected:\n%s\n",
			len(out), st.Read, st.BelowMargin, st.TooLong, f.maxLen, st.NoResponse, tokenize.Dump(tok, out[0].Chosen), tokenize.Dump(tok, out[0].Rejected))
	}
	return tok, out, nil
}

// runAlign runs the loop and reports the final step's preference metrics.
func (f *alignFlags) runAlign(ctx context.Context, env *cliEnv, m *train.Model, tok *tokenize.Tokenizer, obj, ev train.Objective) error {
	cfg := f.trainerConfig(env)
	cfg.Export = f.export()
	cfg.Model = m // ZeRO stage 3 gathers its layers
	var last train.StepRecord
	cfg.OnStep = func(r train.StepRecord) { last = r }
	tr, err := train.NewTrainer(cfg, m.NamedParameters(), obj, ev)
	if err != nil {
		return err
	}
	sum, err := tr.Run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "trained %d steps, final loss %.4f\n", sum.Steps, sum.FinalLoss)
	if len(last.Extra) > 0 {
		keys := make([]string, 0, len(last.Extra))
		for k := range last.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %.4g", k, last.Extra[k])
		}
		fmt.Fprintf(env.stdout, "last step: %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(env.stdout, "model: %s\nmetrics: %s\n", sum.Final, filepath.Join(f.out, "metrics.jsonl"))
	return nil
}
