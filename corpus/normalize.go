package corpus

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// NormalizeText is the text dedup compares: Unicode NFC (so that "ó" typed
// as o + combining acute equals the precomposed letter), lower case, every
// run of white space as one space, no leading or trailing space.
// Punctuation and diacritics are kept: "laska" and "łaska" differ.
func NormalizeText(s string) string {
	var b strings.Builder
	appendNormalized(&b, s)
	return strings.TrimSuffix(b.String(), " ")
}

// appendNormalized writes the normalised s to b, ending with one space when
// s had any text, so that several fields can be joined.
func appendNormalized(b *strings.Builder, s string) {
	if !norm.NFC.IsNormalString(s) {
		s = norm.NFC.String(s)
	}
	space := b.Len() == 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
				if !space {
					b.WriteByte(' ')
					space = true
				}
				continue
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			}
			b.WriteByte(c)
			space = false
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if unicode.IsSpace(r) {
			if !space {
				b.WriteByte(' ')
				space = true
			}
			continue
		}
		b.WriteRune(unicode.ToLower(r))
		space = false
	}
	if !space {
		b.WriteByte(' ')
	}
}

// dedupText is the normalised text of a whole sample: the system prompt and
// every turn, each preceded by its role, so that the same words said by the
// other speaker do not match.
func dedupText(b *strings.Builder, s *Sample) string {
	b.Reset()
	if s.System != "" {
		b.WriteString("system: ")
		appendNormalized(b, s.System)
	}
	for _, m := range s.Messages {
		b.WriteString(string(m.Role))
		b.WriteString(": ")
		appendNormalized(b, m.Content)
	}
	return b.String()
}
