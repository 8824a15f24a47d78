package style

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// span is a half-open byte range.
type span struct{ start, end int }

// line is one line of the text without its line break.
type line struct {
	start, end int
	text       string
}

// doc is a text prepared for the rules: its lines and the spans no rule may
// touch (code and URLs).
type doc struct {
	text  string
	lines []line
	// skip holds code blocks, inline code and URLs, in order.
	skip []span
	// inFence marks lines that belong to a fenced code block.
	inFence []bool
}

func newDoc(text string) *doc {
	d := &doc{text: text}
	start := 0
	for start <= len(text) {
		end := strings.IndexByte(text[start:], '\n')
		if end < 0 {
			end = len(text)
		} else {
			end += start
		}
		lt := strings.TrimSuffix(text[start:end], "\r")
		d.lines = append(d.lines, line{start: start, end: start + len(lt), text: lt})
		start = end + 1
	}
	d.inFence = make([]bool, len(d.lines))
	fence := ""
	for i, l := range d.lines {
		t := strings.TrimLeft(l.text, " \t")
		switch {
		case fence != "":
			d.inFence[i] = true
			d.skip = append(d.skip, span{l.start, l.end})
			if strings.HasPrefix(t, fence) {
				fence = ""
			}
		case strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~"):
			fence = t[:3]
			d.inFence[i] = true
			d.skip = append(d.skip, span{l.start, l.end})
		case strings.HasPrefix(l.text, "    ") || strings.HasPrefix(l.text, "\t"):
			// An indented block may be code; prose rarely starts so.
			d.inFence[i] = true
			d.skip = append(d.skip, span{l.start, l.end})
		default:
			d.skip = append(d.skip, inlineCode(l)...)
		}
	}
	d.skip = append(d.skip, links(text)...)
	d.skip = mergeSpans(d.skip)
	return d
}

// mergeSpans sorts spans and joins overlapping ones, so that excluded can
// search them.
func mergeSpans(ss []span) []span {
	slices.SortFunc(ss, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	out := ss[:0]
	for _, s := range ss {
		if n := len(out); n > 0 && s.start <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, s.end)
			continue
		}
		out = append(out, s)
	}
	return out
}

// links returns the spans of URLs ("https://…", "www.…") and e-mail
// addresses in text. A URL runs to the next space or bracket or quotation
// mark, less trailing punctuation.
func links(text string) []span {
	var out []span
	urlEnd := func(i int) int {
		for i < len(text) {
			r, size := utf8.DecodeRuneInString(text[i:])
			if unicode.IsSpace(r) || strings.ContainsRune("<>()[]„”\"`", r) {
				break
			}
			i += size
		}
		for i > 0 && strings.ContainsRune(".,;:!?'", rune(text[i-1])) {
			i--
		}
		return i
	}
	isScheme := func(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }
	for from := 0; ; {
		j := strings.Index(text[from:], "://")
		if j < 0 {
			break
		}
		i := from + j
		k := i
		for k > 0 && isScheme(text[k-1]) {
			k--
		}
		end := urlEnd(i + 3)
		if k < i {
			out = append(out, span{k, end})
		}
		from = max(i+3, end)
	}
	for from := 0; ; {
		j := strings.Index(text[from:], "www.")
		if j < 0 {
			break
		}
		i := from + j
		end := urlEnd(i)
		if !isWordRune(runeBefore(text, i)) {
			out = append(out, span{i, end})
		}
		from = max(i+4, end)
	}
	isAddr := func(b byte) bool {
		return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("._+-", b) >= 0
	}
	for from := 0; ; {
		j := strings.IndexByte(text[from:], '@')
		if j < 0 {
			break
		}
		i := from + j
		from = i + 1
		k, end := i, i+1
		for k > 0 && isAddr(text[k-1]) {
			k--
		}
		for end < len(text) && isAddr(text[end]) {
			end++
		}
		for end > i+1 && text[end-1] == '.' {
			end--
		}
		if k < i && strings.Contains(text[i+1:end], ".") {
			out = append(out, span{k, end})
			from = end
		}
	}
	return out
}

// inlineCode returns the `code` spans of a line; an unpaired backtick opens
// nothing.
func inlineCode(l line) []span {
	var out []span
	open := -1
	for i := 0; i < len(l.text); i++ {
		if l.text[i] != '`' {
			continue
		}
		if open < 0 {
			open = i
		} else {
			out = append(out, span{l.start + open, l.start + i + 1})
			open = -1
		}
	}
	return out
}

// excluded reports whether [start, end) touches code or a URL.
func (d *doc) excluded(start, end int) bool {
	// The first span ending after start is the only candidate: spans are
	// sorted and disjoint.
	i := sort.Search(len(d.skip), func(i int) bool { return d.skip[i].end > start })
	return i < len(d.skip) && d.skip[i].start < end
}

// prose returns the lines outside fenced and indented code.
func (d *doc) prose() []line {
	out := make([]line, 0, len(d.lines))
	for i, l := range d.lines {
		if !d.inFence[i] {
			out = append(out, l)
		}
	}
	return out
}

// word is a run of letters (with inner hyphens) or digits in a text.
type word struct {
	start, end int
	text       string
}

// words splits s into words; offsets are shifted by base.
func words(s string, base int) []word {
	var out []word
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !isWordRune(r) {
			i += size
			continue
		}
		j := i + size
		for j < len(s) {
			r, size := utf8.DecodeRuneInString(s[j:])
			if isWordRune(r) {
				j += size
				continue
			}
			if r == '-' {
				if n, _ := utf8.DecodeRuneInString(s[j+size:]); isWordRune(n) {
					j += size
					continue
				}
			}
			break
		}
		out = append(out, word{base + i, base + j, s[i:j]})
		i = j
	}
	return out
}

// isWordRune reports whether r belongs to a word: a letter, a digit, or a
// combining mark (the ogonek of a decomposed "ą").
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}

// isUpperInitial reports whether w starts with an upper-case letter.
func isUpperInitial(w string) bool {
	r, _ := utf8.DecodeRuneInString(w)
	return unicode.IsUpper(r)
}

// isAcronym reports whether w has at least two letters and all of them are
// upper case ("NATO", "PKO").
func isAcronym(w string) bool {
	n := 0
	for _, r := range w {
		if unicode.IsLetter(r) {
			if !unicode.IsUpper(r) {
				return false
			}
			n++
		}
	}
	return n >= 2
}

// lowerFirst lower-cases the first letter of w.
func lowerFirst(w string) string {
	r, size := utf8.DecodeRuneInString(w)
	return string(unicode.ToLower(r)) + w[size:]
}

// runeBefore returns the rune ending at byte i of s, or 0 at the start.
func runeBefore(s string, i int) rune {
	if i <= 0 {
		return 0
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return r
}

// runeAt returns the rune starting at byte i of s, or 0 at the end.
func runeAt(s string, i int) rune {
	if i >= len(s) {
		return 0
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return r
}

// set builds a lookup set of words.
func set(ws ...string) map[string]bool {
	m := make(map[string]bool, len(ws))
	for _, w := range ws {
		m[w] = true
	}
	return m
}
