package eval

import (
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Summary describes a sample of lengths.
type Summary struct {
	N      int     `json:"n"`
	Mean   float64 `json:"mean"`
	Median float64 `json:"median"`
	P90    float64 `json:"p90"`
}

// Summarize computes mean, median and the 90th percentile (linear
// interpolation between closest ranks, as numpy's default).
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return Summary{N: len(s), Mean: sum / float64(len(s)), Median: quantile(s, 0.5), P90: quantile(s, 0.9)}
}

func quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (pos-float64(lo))*(sorted[hi]-sorted[lo])
}

// CountWords counts runs of letters or digits, so punctuation and markdown
// bullets are not words and "e-mail" or "12,5" are two.
func CountWords(s string) int {
	n, in := 0, false
	for _, r := range s {
		w := unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
		if w && !in {
			n++
		}
		in = w
	}
	return n
}

// Lengths are one text's length measures; Tokens is 0 without a counter.
type Lengths struct {
	Chars  int `json:"chars"`
	Words  int `json:"words"`
	Tokens int `json:"tokens,omitempty"`
}

// Measure returns the lengths of s, trimmed of surrounding white space.
// countTokens may be nil.
func Measure(s string, countTokens func(string) int) Lengths {
	s = strings.TrimSpace(s)
	l := Lengths{Chars: utf8.RuneCountInString(s), Words: CountWords(s)}
	if countTokens != nil {
		l.Tokens = countTokens(s)
	}
	return l
}

// LengthStats summarises one measure for the responses and the references.
type LengthStats struct {
	Response  Summary `json:"response"`
	Reference Summary `json:"reference"`
	// Ratio is the responses' mean over the references' mean.
	Ratio float64 `json:"ratio"`
	// MedianItemRatio is the median of the per-item ratios, robust to a few
	// runaway answers.
	MedianItemRatio float64 `json:"median_item_ratio"`
}

// VerbosityScore is a verbosity task's result.
type VerbosityScore struct {
	Chars  LengthStats  `json:"chars"`
	Words  LengthStats  `json:"words"`
	Tokens *LengthStats `json:"tokens,omitempty"`
	// Truncated counts responses cut off by the token limit.
	Truncated int `json:"truncated"`
}

// ScoreVerbosity compares response lengths with the references' lengths,
// item by item in the same order.
func ScoreVerbosity(responses, references []Lengths) VerbosityScore {
	pick := func(f func(Lengths) int) LengthStats {
		var r, ref, ratios []float64
		for i := range responses {
			a, b := float64(f(responses[i])), float64(f(references[i]))
			r = append(r, a)
			ref = append(ref, b)
			if b > 0 {
				ratios = append(ratios, a/b)
			}
		}
		st := LengthStats{Response: Summarize(r), Reference: Summarize(ref), MedianItemRatio: Summarize(ratios).Median}
		if st.Reference.Mean > 0 {
			st.Ratio = st.Response.Mean / st.Reference.Mean
		}
		return st
	}
	v := VerbosityScore{
		Chars: pick(func(l Lengths) int { return l.Chars }),
		Words: pick(func(l Lengths) int { return l.Words }),
	}
	if len(references) > 0 && references[0].Tokens > 0 {
		t := pick(func(l Lengths) int { return l.Tokens })
		v.Tokens = &t
	}
	return v
}
