package style

import (
	"sort"
	"unicode"
	"unicode/utf8"
)

// Finding is one style problem in a text.
type Finding struct {
	// Rule is the id of the rule that fired (one of Rules()).
	Rule string `json:"rule"`
	// Start and End are byte offsets into the linted text: text[Start:End]
	// is the offending fragment.
	Start int `json:"start"`
	End   int `json:"end"`
	// Message says, in Polish, what is wrong.
	Message string `json:"message"`
	// Suggestion is the corrected fragment, or empty when no mechanical
	// correction exists.
	Suggestion string `json:"suggestion,omitempty"`
}

// RuleInfo describes one rule.
type RuleInfo struct {
	ID          string `json:"id"`
	Description string `json:"description"`
}

// rule is one check. find returns findings in any order.
type rule struct {
	info RuleInfo
	find func(text string) []Finding
}

var rules []rule

// Rules returns the linter's rules in a fixed order.
func Rules() []RuleInfo {
	out := make([]RuleInfo, len(rules))
	for i, r := range rules {
		out[i] = r.info
	}
	return out
}

// Lint checks text and returns its findings sorted by position (then rule
// id). Invalid UTF-8 is tolerated: such bytes never match any rule.
func Lint(text string) []Finding {
	var out []Finding
	for _, r := range rules {
		out = append(out, r.find(text)...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Start != out[j].Start {
			return out[i].Start < out[j].Start
		}
		return out[i].Rule < out[j].Rule
	})
	return out
}

// Per1000Words returns the number of findings per 1,000 words of text, the
// score that compares models of different verbosity. It is 0 for a text
// with no words.
func Per1000Words(findings []Finding, text string) float64 {
	n := CountWords(text)
	if n == 0 {
		return 0
	}
	return float64(len(findings)) * 1000 / float64(n)
}

// CountWords counts maximal runs of letters and digits (with inner hyphens
// and apostrophes), the unit of Per1000Words.
func CountWords(text string) int {
	n := 0
	in := false
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		word := unicode.IsLetter(r) || unicode.IsDigit(r)
		if word && !in {
			n++
		}
		if !word && in && (r == '-' || r == '\'') {
			// A hyphen inside a word ("e-mail") does not end it.
			if next, _ := utf8.DecodeRuneInString(text[i+size:]); unicode.IsLetter(next) || unicode.IsDigit(next) {
				i += size
				continue
			}
		}
		in = word
		i += size
	}
	return n
}
