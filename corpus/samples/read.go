package samples

import (
	"context"
	"iter"
	"path"

	"github.com/pltune/pltune/corpus"
)

// Samples yields the instruction samples of InstructionFiles in order, each
// with its file's origin.
func Samples(ctx context.Context) iter.Seq2[corpus.Sample, error] {
	return func(yield func(corpus.Sample, error) bool) {
		for _, f := range InstructionFiles() {
			if !each(f.Name, corpus.Options{Origin: f.Origin}, func(r *corpus.Reader) bool {
				for s, err := range r.Samples(ctx) {
					if !yield(s, err) || err != nil {
						return false
					}
				}
				return true
			}, func(err error) { yield(corpus.Sample{}, err) }) {
				return
			}
		}
	}
}

// Pairs yields the preference pairs of Preferences.
func Pairs(ctx context.Context) iter.Seq2[corpus.PreferencePair, error] {
	return func(yield func(corpus.PreferencePair, error) bool) {
		each(Preferences, corpus.Options{Format: corpus.Preference}, func(r *corpus.Reader) bool {
			for p, err := range r.Pairs(ctx) {
				if !yield(p, err) {
					return false
				}
			}
			return true
		}, func(err error) { yield(corpus.PreferencePair{}, err) })
	}
}

// Documents yields the raw-text documents of Pretrain.
func Documents(ctx context.Context) iter.Seq2[corpus.Document, error] {
	return func(yield func(corpus.Document, error) bool) {
		f, err := data.Open(Pretrain)
		if err != nil {
			yield(corpus.Document{}, err)
			return
		}
		defer f.Close()
		for d, err := range corpus.NewTextReader(f, path.Base(Pretrain), corpus.TextJSONL).Documents(ctx) {
			if !yield(d, err) {
				return
			}
		}
	}
}

// each reads the embedded file name with a corpus.Reader named by its
// base name: read's result, or false after fail when it cannot be opened.
func each(name string, opts corpus.Options, read func(*corpus.Reader) bool, fail func(error)) bool {
	f, err := data.Open(name)
	if err != nil {
		fail(err)
		return false
	}
	defer f.Close()
	r, err := corpus.NewReader(f, path.Base(name), opts)
	if err != nil {
		fail(err)
		return false
	}
	return read(r)
}
