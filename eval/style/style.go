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
	// Suggestion replaces text[Start:End]; empty when no mechanical
	// correction exists.
	Suggestion string `json:"suggestion,omitempty"`
}

// RuleInfo describes one rule.
type RuleInfo struct {
	ID          string `json:"id"`
	Description string `json:"description"`
}

// rule is one check. find returns findings in any order; Lint drops those
// that touch code or URLs.
type rule struct {
	info RuleInfo
	find func(d *doc) []Finding
}

// rules is the registry, in the order Rules reports them.
var rules = []rule{
	{RuleInfo{RuleEmailCalque, "kalki angielskich formuł z e-maili (\"Mam nadzieję, że ten e-mail zastanie Pana w dobrym zdrowiu\", \"Nie wahaj się skontaktować\")"}, findEmailCalques},
	{RuleInfo{RuleClosingComma, "przecinek po formule pożegnalnej w osobnym wierszu (\"Z poważaniem,\")"}, findClosingCommas},
	{RuleInfo{RuleGreetingCapital, "wielka litera na początku wiersza po powitaniu zakończonym przecinkiem"}, findGreetingCapitals},
	{RuleInfo{RuleQuotes, "angielski cudzysłów “…” lub prosty \"…\" zamiast polskiego „…”"}, findQuotes},
	{RuleInfo{RuleDecimalPoint, "kropka dziesiętna w liczbie z jednostką (3.5 kg zamiast 3,5 kg)"}, findDecimalPoints},
	{RuleInfo{RuleDateFormat, "angielski zapis daty (01/31/2024, \"Styczeń 5, 2024\")"}, findDateFormats},
	{RuleInfo{RuleTitleCase, "nagłówek pisany wielkimi literami w każdym wyrazie (Title Case)"}, findTitleCase},
	{RuleInfo{RuleOrdinal, "liczebnik porządkowy z końcówką (5-ty, lata 70-te) zamiast kropki"}, findOrdinals},
	{RuleInfo{RuleMissingComma, "brak przecinka przed że, który, ponieważ, gdyż, żeby, aby"}, findMissingCommas},
}

// Rule ids. They are stable: reports and tests refer to them.
const (
	RuleEmailCalque     = "email-calque"
	RuleClosingComma    = "closing-comma"
	RuleGreetingCapital = "greeting-capital"
	RuleQuotes          = "quotes"
	RuleDecimalPoint    = "decimal-point"
	RuleDateFormat      = "date-format"
	RuleTitleCase       = "title-case"
	RuleOrdinal         = "ordinal-suffix"
	RuleMissingComma    = "missing-comma"
)

// Rules returns the linter's rules in a fixed order.
func Rules() []RuleInfo {
	out := make([]RuleInfo, len(rules))
	for i, r := range rules {
		out[i] = r.info
	}
	return out
}

// Lint checks text and returns its findings sorted by position (then rule
// id). Text inside Markdown code (fenced blocks and `inline` spans) and URLs
// is not checked. Invalid UTF-8 is tolerated.
func Lint(text string) []Finding {
	d := newDoc(text)
	var out []Finding
	for _, r := range rules {
		for _, f := range r.find(d) {
			if !d.excluded(f.Start, f.End) {
				out = append(out, f)
			}
		}
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

// CountWords counts maximal runs of letters, digits and combining marks
// (decomposed "ą" is one letter), the unit of Per1000Words. Inner hyphens and apostrophes ("e-mail") and a decimal comma
// or point between digits ("3,5") do not split a word.
func CountWords(text string) int {
	n := 0
	in := false
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		word := isWordRune(r)
		if word && !in {
			n++
		}
		if !word && in && isInner(r, text[:i], text[i+size:]) {
			i += size
			continue
		}
		in = word
		i += size
	}
	return n
}

// isInner reports whether the non-word rune r, between before and after,
// belongs to the word around it.
func isInner(r rune, before, after string) bool {
	next, _ := utf8.DecodeRuneInString(after)
	switch r {
	case '-', '\'':
		return isWordRune(next)
	case ',', '.':
		prev, _ := utf8.DecodeLastRuneInString(before)
		return unicode.IsDigit(prev) && unicode.IsDigit(next)
	}
	return false
}
