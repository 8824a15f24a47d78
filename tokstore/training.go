package tokstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// IsStore tells whether path is a token store folder: one with
// manifest.json (a finished build).
func IsStore(path string) bool {
	st, err := os.Stat(filepath.Join(path, "manifest.json"))
	return err == nil && !st.IsDir()
}

// TrainSource is one store to train on.
type TrainSource struct {
	Dir string
	// Weight is the store's share of the training tokens beside the other
	// sources (MixSource.Weight); all zero: all of each.
	Weight float64
	// CapTokens caps the tokens taken from the store (0: no cap).
	CapTokens int64
}

// TrainOptions say which stores a training run accepts and how their rows
// are cut.
type TrainOptions struct {
	// Type is the store type the run trains on (text for pre-training,
	// chat for fine-tuning).
	Type Type
	// Tokenizer is the run's tokenizer (a folder or tokenizer.json): the
	// stores must have been tokenized with it (TokenizerSHA256).
	Tokenizer string
	// RowLen and Pack cut the rows (OpenRows).
	RowLen int
	Pack   bool
	// Seed chooses the mixture's rows (Mix).
	Seed uint64
}

// Training is the rows a run trains on: one store's rows, or a Mixture of
// several stores (or of one under a cap). It holds the stores open until
// Close.
type Training struct {
	Rows
	// Mix is the mixture, with its Report; nil when one store is read
	// whole.
	Mix    *Mixture
	stores []*Store
}

// Close closes the stores.
func (t *Training) Close() error {
	var errs []error
	for _, s := range t.stores {
		errs = append(errs, s.Close())
	}
	t.stores = nil
	return errors.Join(errs...)
}

// OpenTraining opens the stores of sources for a training run: each must be
// of opts.Type and tokenized with opts.Tokenizer, or the error says which
// and what to do. One store without a cap is read whole; otherwise the
// stores are mixed by their weights and caps under opts.Seed.
func OpenTraining(sources []TrainSource, opts TrainOptions) (*Training, error) {
	if len(sources) == 0 {
		return nil, errors.New("tokstore: no stores to train on")
	}
	sum, err := TokenizerSHA256(opts.Tokenizer)
	if err != nil {
		return nil, err
	}
	t := &Training{}
	var mix []MixSource
	for _, src := range sources {
		s, err := Open(src.Dir)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.stores = append(t.stores, s)
		if s.Type() != opts.Type {
			t.Close()
			return nil, fmt.Errorf("%s is a %s store; this run trains on %s stores", src.Dir, s.Type(), opts.Type)
		}
		if got := s.Manifest.Tokenizer.SHA256; got != sum {
			t.Close()
			return nil, fmt.Errorf("%s was tokenized with another tokenizer (sha256 %.12s…, %s has %.12s…): tokenize it again with this one", src.Dir, got, opts.Tokenizer, sum)
		}
		rows, err := OpenRows(s, opts.RowLen, opts.Pack)
		if err != nil {
			t.Close()
			return nil, err
		}
		mix = append(mix, MixSource{Name: src.Dir, Rows: rows, Weight: src.Weight, CapTokens: src.CapTokens})
	}
	if len(mix) == 1 && mix[0].CapTokens == 0 {
		t.Rows = mix[0].Rows
		return t, nil
	}
	if t.Mix, err = Mix(mix, opts.Seed); err != nil {
		t.Close()
		return nil, err
	}
	t.Rows = t.Mix
	return t, nil
}
