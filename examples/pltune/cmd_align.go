//go:build pltune_torch

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pltune/pltune/align"
	"github.com/pltune/pltune/corpus"
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
	trainPairs, evalPairs := f.splitPairs(pairs)
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
	var ref *train.Model
	if refDir != "" {
		opts, err := f.modelOptions()
		if err != nil {
			return err
		}
		p, err := train.Open(refDir, train.OpenOptions{ModelOptions: opts, Tokenizer: f.tokenizer})
		if err != nil {
			return fmt.Errorf("--ref-model: %w", err)
		}
		ref = p.Model
		defer ref.Drop()
		if ref.Config.VocabSize != m.Config.VocabSize {
			return fmt.Errorf("--ref-model %s has a vocabulary of %d, the policy %d", refDir, ref.Config.VocabSize, m.Config.VocabSize)
		}
	}
	trainPairs, evalPairs := f.splitPairs(pairs)
	// The reference log-probs are kept in --out, so a resumed run reuses
	// them; the file says which pairs and which reference they belong to.
	source := "policy " + f.model + f.modelConfig
	switch {
	case refDir != "":
		source = "ref-model " + refDir
	case f.pre.AdapterDir != "":
		// Training an adapter on: the reference is the model it starts
		// from, base and adapter, scored before the first step.
		ref = m
		source += " (base and adapter as loaded)"
	case f.loraRank > 0:
		source += " (LoRA adapters off)"
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	newDPO := func(ps []tokenize.PreferenceExample, file string) (*align.DPO, error) {
		o, err := align.NewDPO(m, ps, tok.PadID(), align.DPOConfig{Beta: f.beta})
		if err != nil {
			return nil, err
		}
		path := filepath.Join(f.out, file)
		if ok, err := o.LoadReference(path, source); err != nil || ok {
			if ok && !f.quiet {
				fmt.Fprintf(env.stderr, "reference log-probs of %d pairs from %s\n", len(ps), path)
			}
			return o, err
		}
		if !f.quiet {
			fmt.Fprintf(env.stderr, "computing reference log-probs of %d pairs (%s)\n", len(ps), source)
		}
		// Reference log-probs without LoRA dropout.
		m.SetTraining(false)
		err = o.ComputeReference(ctx, ref, 2*f.batch)
		m.SetTraining(true)
		if err != nil {
			return nil, err
		}
		return o, o.SaveReference(path, source)
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

// loadPairs reads, filters and tokenizes the preference data.
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
	var out []tokenize.PreferenceExample
	var st align.BuildStats
	for _, path := range f.data {
		ranked, err := isRankedFile(path)
		if err != nil {
			return nil, nil, err
		}
		pairs := corpus.ReadPairs(ctx, path, corpus.Options{})
		if ranked {
			pairs = align.RankedPairs(ctx, path, f.minMargin)
		}
		// Reader errors name the file and line already; a pair that fails
		// to build is named by its id, so the file is added.
		readErr, src := false, pairs
		pairs = func(yield func(corpus.PreferencePair, error) bool) {
			for p, err := range src {
				readErr = err != nil
				if !yield(p, err) {
					return
				}
			}
		}
		built, s, err := align.BuildPairs(ctx, b, pairs, f.minMargin)
		if err != nil && !readErr {
			err = fmt.Errorf("%s: %w", path, err)
		}
		if err != nil {
			return nil, nil, err
		}
		out = append(out, built...)
		st.Read, st.BelowMargin, st.TooLong, st.NoResponse = st.Read+s.Read, st.BelowMargin+s.BelowMargin, st.TooLong+s.TooLong, st.NoResponse+s.NoResponse
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

// isRankedFile tells a ranked-responses file from a pair file by its first
// record: it has "responses" and no "chosen".
func isRankedFile(path string) (bool, error) {
	if !strings.HasSuffix(path, ".jsonl") && !strings.HasSuffix(path, ".json") {
		return false, nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer fh.Close()
	br := bufio.NewReader(fh)
	for {
		line, err := br.ReadBytes('\n')
		if t := bytes.TrimSpace(line); len(t) > 0 {
			var keys map[string]json.RawMessage
			if json.Unmarshal(t, &keys) != nil {
				return false, nil // the pair reader reports it
			}
			_, responses := keys["responses"]
			_, chosen := keys["chosen"]
			return responses && !chosen, nil
		}
		if err != nil {
			return false, nil
		}
	}
}

// splitPairs holds out the last 5% of pairs (at least one) when evaluation
// is asked for.
func (f *alignFlags) splitPairs(pairs []tokenize.PreferenceExample) (trainPairs, evalPairs []tokenize.PreferenceExample) {
	if f.evalEvery <= 0 || len(pairs) < 2 {
		return pairs, nil
	}
	n := max(1, len(pairs)/20)
	return pairs[:len(pairs)-n], pairs[len(pairs)-n:]
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
