package eval

import (
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// NormalizeOptions tunes Normalize.
type NormalizeOptions struct {
	// FoldDiacritics maps Polish (and other Latin) letters to their base
	// letters: "Łódź" and "lodz" then compare equal.
	FoldDiacritics bool
}

// answerPrefix matches the lead-ins models put before a short answer. It is
// applied repeatedly, so "Odpowiedź: Answer: X" loses both.
var answerPrefix = regexp.MustCompile(`(?i)^\s*(?:[*_#>]+\s*)?(?:` +
	`(?:prawidłowa|poprawna|właściwa|ostateczna|krótka)\s+odpowied[źz]\s*(?:to|brzmi|jest)?` +
	`|odpowied[źz]\s*(?:to|brzmi|jest)?` +
	`|odp\.?` +
	`|(?:the\s+)?(?:correct\s+|final\s+)?answer\s*(?:is)?` +
	`)\s*(?:[*_]+\s*)?[:\-–—]?\s*(?:[*_]+\s*)?`)

// Normalize prepares an open answer for comparison: it drops a leading
// "Odpowiedź:", "Poprawna odpowiedź to", "Answer:" and similar, lower-cases,
// removes quotation marks (Polish „…” and »…«, English “…”, straight and
// single quotes), turns other punctuation and symbols into spaces, collapses
// white space and, when asked, folds diacritics.
func Normalize(s string, opt NormalizeOptions) string {
	for {
		loc := answerPrefix.FindStringIndex(s)
		// A bare "Odpowiedź" with nothing after it is an answer, not a prefix.
		if loc == nil || loc[1] == 0 || loc[1] == len(s) {
			break
		}
		// Only strip when the prefix ends at a separator, so that the word
		// "odpowiedzialność" is not eaten as "odpowiedz" + "ialność".
		prev := s[:loc[1]]
		last := prev[len(prev)-1]
		if last != ':' && last != ' ' && last != '-' && last != '*' && last != '_' && !strings.HasSuffix(prev, "–") && !strings.HasSuffix(prev, "—") {
			break
		}
		s = s[loc[1]:]
	}
	s = strings.ToLower(s)
	if opt.FoldDiacritics {
		s = foldDiacritics(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	space := true // drop leading space
	for _, r := range s {
		switch {
		case isQuote(r):
			continue
		case unicode.IsSpace(r), unicode.IsPunct(r), unicode.IsSymbol(r):
			if !space {
				b.WriteByte(' ')
				space = true
			}
		default:
			b.WriteRune(r)
			space = false
		}
	}
	return strings.TrimRight(b.String(), " ")
}

func isQuote(r rune) bool {
	switch r {
	case '"', '\'', '`', '„', '”', '“', '‟', '«', '»', '‚', '‘', '’', '‛', '‹', '›':
		return true
	}
	return false
}

// foldDiacritics removes combining marks after canonical decomposition and
// maps the letters that do not decompose (ł, ø, đ, ß).
func foldDiacritics(s string) string {
	d := norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		switch {
		case unicode.Is(unicode.Mn, r):
		case r == 'ł':
			b.WriteRune('l')
		case r == 'Ł':
			b.WriteRune('L')
		case r == 'ø':
			b.WriteRune('o')
		case r == 'đ':
			b.WriteRune('d')
		case r == 'ß':
			b.WriteString("ss")
		default:
			b.WriteRune(r)
		}
	}
	return norm.NFC.String(b.String())
}

// MatchMode chooses how a normalised answer must meet the normalised response.
type MatchMode int

// The match modes.
const (
	// MatchContains accepts the answer anywhere in the response as whole
	// words: "Stolicą jest Warszawa." matches "Warszawa".
	MatchContains MatchMode = iota
	// MatchExact wants the whole normalised response to equal the answer.
	MatchExact
)

// OpenQAOptions tunes open-question scoring.
type OpenQAOptions struct {
	Normalize NormalizeOptions
	Match     MatchMode
}

// MatchOpenQA reports whether response answers the item, and which accepted
// answer or regex ("re:<pattern>") matched.
func MatchOpenQA(it *OpenQAItem, response string, opt OpenQAOptions) (bool, string) {
	got := Normalize(response, opt.Normalize)
	for _, a := range it.Answers {
		want := Normalize(a, opt.Normalize)
		if want == "" {
			continue
		}
		if got == want || opt.Match == MatchContains && containsWords(got, want) {
			return true, a
		}
	}
	res := it.regex
	if len(res) != len(it.Regex) {
		// An item built by hand rather than read from a file: compile now.
		res = nil
		for _, s := range it.Regex {
			if re, err := regexp.Compile(s); err == nil {
				res = append(res, re)
			}
		}
	}
	for _, re := range res {
		if re.MatchString(response) || re.MatchString(got) {
			return true, "re:" + re.String()
		}
	}
	return false, ""
}

// containsWords reports whether want occurs in got bounded by spaces or the
// ends; both are normalised, so words are separated by single spaces.
func containsWords(got, want string) bool {
	for i := 0; ; {
		j := strings.Index(got[i:], want)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(want)
		if (start == 0 || got[start-1] == ' ') && (end == len(got) || got[end] == ' ') {
			return true
		}
		i = start + 1
	}
}
