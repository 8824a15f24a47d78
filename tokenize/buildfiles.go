package tokenize

import (
	"context"
	"fmt"

	"github.com/pltune/pltune/corpus"
)

// BuildFiles is BuildAll over the samples of files (corpus.ReadSamples,
// format detected), in order, with the stats of all files summed. Read
// errors name their file and line; a sample that fails to build is named
// by its file.
func (b *SFTBuilder) BuildFiles(ctx context.Context, paths ...string) ([]Sequence, SFTStats, error) {
	var out []Sequence
	var st SFTStats
	for _, path := range paths {
		readErr := false
		samples := func(yield func(corpus.Sample, error) bool) {
			for s, err := range corpus.ReadSamples(ctx, path, corpus.Options{}) {
				readErr = err != nil
				if !yield(s, err) {
					return
				}
			}
		}
		seqs, s, err := b.BuildAll(ctx, samples)
		st.Samples += s.Samples
		st.Sequences += s.Sequences
		st.TooLong += s.TooLong
		st.Tokens += s.Tokens
		st.Trained += s.Trained
		out = append(out, seqs...)
		if err != nil && !readErr {
			err = fmt.Errorf("%s: %w", path, err)
		}
		if err != nil {
			return out, st, err
		}
	}
	return out, st, nil
}
