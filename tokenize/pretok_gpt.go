package tokenize

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

// Character classes of the GPT-style split patterns. Oniguruma, which HF
// tokenizers runs these patterns on, reads \s as Unicode White_Space, \p{L}
// as the letter categories and \p{N} as the number categories; Go's unicode
// tables give the same sets (checked against HF on NBSP, U+2028, U+3000,
// U+0085, U+001C, U+180E, superscripts and roman numerals).
const (
	clsOther  uint8 = 0
	clsLetter uint8 = 1
	clsNumber uint8 = 2
	clsSpace  uint8 = 3
)

var (
	bmpClassOnce sync.Once
	bmpClass     []uint8
)

// buildBMPClass fills a lookup table for the Basic Multilingual Plane: the
// unicode package's range tables cost a binary search per rune, and Polish
// text spends almost all its runes here.
func buildBMPClass() {
	bmpClass = make([]uint8, 0x10000)
	for r := rune(0); r < 0x10000; r++ {
		bmpClass[r] = slowClass(r)
	}
}

func slowClass(r rune) uint8 {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return clsOther
}

// runeClass decodes the rune at s[i] and returns its class and width.
// Invalid UTF-8 bytes count as one-byte "other" characters, so byte-level
// tokenizers still round-trip them.
func runeClass(s string, i int) (r rune, cls uint8, w int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), asciiClass[c], 1
	}
	r, w = utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && w == 1 {
		return r, clsOther, 1
	}
	if r < 0x10000 {
		return r, bmpClass[r], w
	}
	return r, slowClass(r), w
}

var asciiClass = func() (t [128]uint8) {
	for c := 0; c < 128; c++ {
		t[c] = slowClass(rune(c))
	}
	return t
}()

// gptStyle is one of the GPT-family split patterns, matched by hand: Go's
// regexp cannot express their `\s+(?!\S)` look-ahead, and a direct matcher is
// several times faster than a general regex engine anyway.
type gptStyle int

const (
	// gpt2Style: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
	gpt2Style gptStyle = iota
	// llama3Style: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
	// (Llama 3, cl100k); qwenStyle is the same with \p{N} taken one at a time.
	llama3Style
	qwenStyle
)

const (
	patGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	patLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patQwen   = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// knownGPTPatterns maps the regex source found in tokenizer.json files to the
// hand-written matcher that reproduces it.
var knownGPTPatterns = map[string]gptStyle{
	patGPT2:   gpt2Style,
	patLlama3: llama3Style,
	patQwen:   qwenStyle,
}

// find returns the next match at or after from: the patterns match every
// character, so the match always starts at from.
func (g gptStyle) find(s string, from int) (start, end int) {
	bmpClassOnce.Do(buildBMPClass)
	switch g {
	case gpt2Style:
		return from, gpt2Next(s, from)
	case qwenStyle:
		return from, llama3Next(s, from, 1)
	default:
		return from, llama3Next(s, from, 3)
	}
}

// contraction matches s|t|re|ve|m|ll|d at the start of s and returns its
// length, 0 when none matches. With fold, ASCII case is ignored and ſ (U+017F)
// matches s, as Oniguruma's Unicode case folding does.
func contraction(s string, fold bool) int {
	if len(s) == 0 {
		return 0
	}
	lower := func(c byte) byte {
		if fold && 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	c := lower(s[0])
	switch c {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if len(s) > 1 && lower(s[1]) == 'e' {
			return 2
		}
	case 'l':
		if len(s) > 1 && lower(s[1]) == 'l' {
			return 2
		}
	case 0xC5:
		if fold && len(s) > 1 && s[1] == 0xBF { // ſ
			return 2
		}
	}
	return 0
}

// runEnd returns the end of the run of characters of class cls starting at i,
// taking at most max characters (max < 0: unbounded).
func runEnd(s string, i int, cls uint8, max int) int {
	for n := 0; i < len(s) && n != max; n++ {
		_, c, w := runeClass(s, i)
		if c != cls {
			break
		}
		i += w
	}
	return i
}

// whitespaceTail matches \s+(?!\S)|\s+ at i, where s[i] is whitespace.
func whitespaceTail(s string, i int) int {
	end, last := i, i
	for end < len(s) {
		_, c, w := runeClass(s, end)
		if c != clsSpace {
			break
		}
		last = end
		end += w
	}
	if end == len(s) || last == i {
		return end
	}
	return last
}

func llama3Next(s string, i int, maxDigits int) int {
	r0, c0, w0 := runeClass(s, i)
	if r0 == '\'' {
		if n := contraction(s[i+1:], true); n > 0 {
			return i + 1 + n
		}
	}
	switch c0 {
	case clsLetter:
		return runEnd(s, i, clsLetter, -1)
	case clsNumber:
		return runEnd(s, i, clsNumber, maxDigits)
	}
	if r0 != '\r' && r0 != '\n' && i+w0 < len(s) {
		if _, c1, _ := runeClass(s, i+w0); c1 == clsLetter {
			return runEnd(s, i+w0, clsLetter, -1)
		}
	}
	j := i
	if r0 == ' ' {
		j++
	}
	if j < len(s) {
		if _, c, _ := runeClass(s, j); c == clsOther {
			k := runEnd(s, j, clsOther, -1)
			for k < len(s) && (s[k] == '\r' || s[k] == '\n') {
				k++
			}
			return k
		}
	}
	// c0 is whitespace here. \s*[\r\n]+ ends after the run's last newline.
	nl, end := -1, i
	for end < len(s) {
		r, c, w := runeClass(s, end)
		if c != clsSpace {
			break
		}
		end += w
		if r == '\r' || r == '\n' {
			nl = end
		}
	}
	if nl >= 0 {
		return nl
	}
	return whitespaceTail(s, i)
}

func gpt2Next(s string, i int) int {
	r0, c0, _ := runeClass(s, i)
	if r0 == '\'' {
		if n := contraction(s[i+1:], false); n > 0 {
			return i + 1 + n
		}
	}
	j, cj := i, c0
	if r0 == ' ' && i+1 < len(s) {
		_, c1, _ := runeClass(s, i+1)
		if c1 != clsSpace {
			j, cj = i+1, c1
		}
	}
	switch cj {
	case clsLetter, clsNumber, clsOther:
		return runEnd(s, j, cj, -1)
	}
	return whitespaceTail(s, i)
}
