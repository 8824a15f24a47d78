//go:build pltune_torch

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/tokstore"
	"github.com/pltune/pltune/train"
)

// storeFlags are the mixing flags of training from token stores.
type storeFlags struct {
	weights, caps string
}

func (s *storeFlags) register(fs interface {
	StringVar(p *string, name, value, usage string)
}) {
	fs.StringVar(&s.weights, "data-weights", "", "with several --data stores: their shares of the training tokens, comma-separated (default: all of each)")
	fs.StringVar(&s.caps, "data-caps", "", "with --data stores: the most tokens taken from each, comma-separated (0: no cap)")
}

func parseNumbers(s string, n int, what string) ([]float64, error) {
	out := make([]float64, n)
	if s == "" {
		return out, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != n {
		return nil, usagef("--%s has %d values for %d stores", what, len(parts), n)
	}
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v < 0 {
			return nil, usagef("--%s: %q is not a non-negative number", what, p)
		}
		out[i] = v
	}
	return out, nil
}

// openStores opens f.data as token stores of type want when they are
// stores: the rows to train on (a mixture when several), a function that
// closes them, and false when the data are not stores. The rows of a text
// store are cut at --max-len; a chat store gives one row per sequence or,
// with --pack, packed rows. The stores must have been made with the
// training tokenizer.
func (f *trainFlags) openStores(env *cliEnv, want tokstore.Type, tokPath string) (tokstore.Rows, func(), bool, error) {
	n := 0
	for _, d := range f.data {
		if tokstore.IsStore(d) {
			n++
		}
	}
	if n == 0 {
		if f.stores.weights != "" || f.stores.caps != "" {
			return nil, nil, false, usagef("--data-weights and --data-caps need --data token stores (pltune corpus tokenize)")
		}
		return nil, nil, false, nil
	}
	if n != len(f.data) {
		return nil, nil, false, usagef("--data mixes token stores and files; tokenize the files into stores (pltune corpus tokenize) or give files only")
	}
	weights, err := parseNumbers(f.stores.weights, n, "data-weights")
	if err != nil {
		return nil, nil, false, err
	}
	caps, err := parseNumbers(f.stores.caps, n, "data-caps")
	if err != nil {
		return nil, nil, false, err
	}
	sources := make([]tokstore.TrainSource, n)
	for i, d := range f.data {
		sources[i] = tokstore.TrainSource{Dir: d, Weight: weights[i], CapTokens: int64(caps[i])}
	}
	tr, err := tokstore.OpenTraining(sources, tokstore.TrainOptions{Type: want, Tokenizer: tokPath, RowLen: f.maxLen, Pack: f.pack, Seed: uint64(f.seed)})
	if err != nil {
		return nil, nil, false, err
	}
	closeAll := func() { tr.Close() }
	if tr.Mix == nil {
		return tr.Rows, closeAll, true, nil
	}
	if !f.quiet {
		fmt.Fprintln(env.stderr, "data mix (tokens per source):")
		for _, l := range tr.Mix.Report {
			fmt.Fprintf(env.stderr, "  %-40s %14d of %14d tokens (capped %d), share %.4f (asked %.4f)\n", l.Name, l.TakenTokens, l.Tokens, l.CappedTokens, l.Share, l.RequestedWeight)
		}
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		closeAll()
		return nil, nil, false, err
	}
	b, _ := json.MarshalIndent(tr.Mix.Report, "", "  ")
	if err := os.WriteFile(filepath.Join(f.out, "data_mix.json"), append(b, '\n'), 0o644); err != nil {
		closeAll()
		return nil, nil, false, err
	}
	return tr.Mix, closeAll, true, nil
}

// runTrainingFrom runs the loop over the rows of token stores, holding
// back 5% of the rows for the held-out loss when asked.
func (f *trainFlags) runTrainingFrom(ctx context.Context, env *cliEnv, m *train.Model, tok *tokenize.Tokenizer, src tokstore.Rows) error {
	trainSrc, evalSrc := tokstore.SplitHeldOut(src, f.heldOutFrac(), f.seed)
	var ev train.Objective
	if evalSrc != nil {
		ev = train.NewLMObjectiveFrom(m, evalSrc, tok.PadID())
	}
	cfg := f.trainerConfig(env)
	cfg.Export = f.export()
	tr, err := train.NewTrainer(cfg, m.NamedParameters(), train.NewLMObjectiveFrom(m, trainSrc, tok.PadID()), ev)
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
