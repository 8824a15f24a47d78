package align

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/tokenize"
)

// BuildStats counts the pairs BuildPairs read and those it left out.
type BuildStats struct {
	Read        int // pairs read
	BelowMargin int // rated pairs whose ratings differ by less than the margin
	TooLong     int // a side longer than the builder's maximum length
	NoResponse  int // a side with no response token left
}

// Kept is the number of pairs built.
func (s BuildStats) Kept() int { return s.Read - s.BelowMargin - s.TooLong - s.NoResponse }

// BuildPairs tokenizes preference pairs with b (SFTBuilder.BuildPreference):
// rated pairs less than minMargin apart are skipped (KeepByMargin), pairs
// longer than the builder's maximum length are dropped under its
// DropTooLong policy, pairs with no response token are dropped; each is
// counted. Any other error ends the build, naming the pair.
func BuildPairs(ctx context.Context, b *tokenize.SFTBuilder, pairs iter.Seq2[corpus.PreferencePair, error], minMargin float64) ([]tokenize.PreferenceExample, BuildStats, error) {
	var out []tokenize.PreferenceExample
	var st BuildStats
	for p, err := range pairs {
		if err != nil {
			return nil, st, err
		}
		if err := ctx.Err(); err != nil {
			return nil, st, err
		}
		st.Read++
		if !KeepByMargin(&p, minMargin) {
			st.BelowMargin++
			continue
		}
		ex, err := b.BuildPreference(&p)
		switch {
		case errors.Is(err, tokenize.ErrTooLong):
			st.TooLong++
			continue
		case errors.Is(err, tokenize.ErrNoTrainableTokens):
			st.NoResponse++
			continue
		case err != nil:
			return nil, st, err
		case checkPair(&ex) != nil:
			st.NoResponse++
			continue
		}
		out = append(out, ex)
	}
	return out, st, nil
}

// RankedPairs yields the preference pairs of a ranked-responses file
// (ReadRanked, Ranked.Pairs).
func RankedPairs(ctx context.Context, path string, minMargin float64) iter.Seq2[corpus.PreferencePair, error] {
	return func(yield func(corpus.PreferencePair, error) bool) {
		for r, err := range ReadRanked(ctx, path) {
			if err != nil {
				yield(corpus.PreferencePair{}, err)
				return
			}
			ps, err := r.Pairs(minMargin)
			if err != nil {
				yield(corpus.PreferencePair{}, fmt.Errorf("%s: %w", path, err))
				return
			}
			for _, p := range ps {
				if !yield(p, nil) {
					return
				}
			}
		}
	}
}
