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

// isStore tells whether path is a token store folder.
func isStore(path string) bool {
	st, err := os.Stat(filepath.Join(path, "manifest.json"))
	return err == nil && !st.IsDir()
}

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
		if isStore(d) {
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
	sum, err := tokstore.TokenizerSHA256(tokPath)
	if err != nil {
		return nil, nil, false, err
	}
	var opened []*tokstore.Store
	closeAll := func() {
		for _, s := range opened {
			s.Close()
		}
	}
	var sources []tokstore.MixSource
	for i, d := range f.data {
		s, err := tokstore.Open(d)
		if err != nil {
			closeAll()
			return nil, nil, false, err
		}
		opened = append(opened, s)
		if s.Type() != want {
			closeAll()
			return nil, nil, false, fmt.Errorf("%s is a %s store; this command trains on %s stores", d, s.Type(), want)
		}
		if got := s.Manifest.Tokenizer.SHA256; got != sum {
			closeAll()
			return nil, nil, false, fmt.Errorf("%s was tokenized with another tokenizer (sha256 %.12s…, %s has %.12s…): tokenize it again with this one", d, got, tokPath, sum)
		}
		rows, err := tokstore.OpenRows(s, f.maxLen, f.pack)
		if err != nil {
			closeAll()
			return nil, nil, false, err
		}
		sources = append(sources, tokstore.MixSource{Name: d, Rows: rows, Weight: weights[i], CapTokens: int64(caps[i])})
	}
	if len(sources) == 1 && caps[0] == 0 {
		return sources[0].Rows, closeAll, true, nil
	}
	mix, err := tokstore.Mix(sources, uint64(f.seed))
	if err != nil {
		closeAll()
		return nil, nil, false, err
	}
	if !f.quiet {
		fmt.Fprintln(env.stderr, "data mix (tokens per source):")
		for _, l := range mix.Report {
			fmt.Fprintf(env.stderr, "  %-40s %14d of %14d tokens (capped %d), share %.4f (asked %.4f)\n", l.Name, l.TakenTokens, l.Tokens, l.CappedTokens, l.Share, l.RequestedWeight)
		}
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		closeAll()
		return nil, nil, false, err
	}
	b, _ := json.MarshalIndent(mix.Report, "", "  ")
	if err := os.WriteFile(filepath.Join(f.out, "data_mix.json"), append(b, '\n'), 0o644); err != nil {
		closeAll()
		return nil, nil, false, err
	}
	return mix, closeAll, true, nil
}

// rowRange is rows [off, off+n) of a source.
type rowRange struct {
	src    tokstore.Rows
	off, n int
}

func (r rowRange) Len() int { return r.n }
func (r rowRange) Row(i int) (tokenize.PackedRow, error) {
	if i < 0 || i >= r.n {
		return tokenize.PackedRow{}, fmt.Errorf("row %d out of range [0, %d)", i, r.n)
	}
	return r.src.Row(r.off + i)
}
func (r rowRange) Fingerprint() string {
	return fmt.Sprintf("%s[%d:%d]", r.src.Fingerprint(), r.off, r.off+r.n)
}

// runTrainingFrom runs the loop over the rows of token stores, holding
// back the last 5% of rows for the held-out loss when asked.
func (f *trainFlags) runTrainingFrom(ctx context.Context, env *cliEnv, m *train.Model, tok *tokenize.Tokenizer, src tokstore.Rows) error {
	trainSrc := train.RowSource(src)
	var ev train.Objective
	if f.evalEvery > 0 && src.Len() >= 2 {
		n := max(1, src.Len()/20)
		trainSrc = rowRange{src: src, n: src.Len() - n}
		ev = train.NewLMObjectiveFrom(m, rowRange{src: src, off: src.Len() - n, n: n}, tok.PadID())
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
