package align

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"strings"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/tokenize"
)

// IsRankedFile tells a ranked-responses file (ReadRanked) from a file of
// preference pairs by its first record: a JSONL (or .json) record with
// "responses" and no "chosen". A first record that is not JSON is left to
// the pair reader to report.
func IsRankedFile(path string) (bool, error) {
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
				return false, nil
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

// ReadPreferences yields the preference pairs of a data file: a
// ranked-responses file (IsRankedFile) paired by RankedPairs with
// minMargin, any other file read by corpus.ReadPairs in its detected
// format.
func ReadPreferences(ctx context.Context, path string, minMargin float64) iter.Seq2[corpus.PreferencePair, error] {
	return func(yield func(corpus.PreferencePair, error) bool) {
		ranked, err := IsRankedFile(path)
		if err != nil {
			yield(corpus.PreferencePair{}, err)
			return
		}
		pairs := corpus.ReadPairs(ctx, path, corpus.Options{})
		if ranked {
			pairs = RankedPairs(ctx, path, minMargin)
		}
		for p, err := range pairs {
			if !yield(p, err) {
				return
			}
		}
	}
}

// LoadPairs reads the preference pairs of files (ReadPreferences) and
// builds them with b (BuildPairs), in order, with the stats of all files
// summed. Read errors name their file and line; a pair that fails to
// build is named by the file and the pair's id.
func LoadPairs(ctx context.Context, b *tokenize.SFTBuilder, paths []string, minMargin float64) ([]tokenize.PreferenceExample, BuildStats, error) {
	var out []tokenize.PreferenceExample
	var st BuildStats
	for _, path := range paths {
		readErr := false
		pairs := func(yield func(corpus.PreferencePair, error) bool) {
			for p, err := range ReadPreferences(ctx, path, minMargin) {
				readErr = err != nil
				if !yield(p, err) {
					return
				}
			}
		}
		built, s, err := BuildPairs(ctx, b, pairs, minMargin)
		st.Read += s.Read
		st.BelowMargin += s.BelowMargin
		st.TooLong += s.TooLong
		st.NoResponse += s.NoResponse
		if err != nil && !readErr {
			err = fmt.Errorf("%s: %w", path, err)
		}
		if err != nil {
			return nil, st, err
		}
		out = append(out, built...)
	}
	return out, st, nil
}
