package tokenize

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// span is a byte range [start, end) of the original input.
type span struct{ start, end int32 }

// nstring is text on its way through the pipeline together with, when
// offsets are tracked, the original byte range each of its bytes came from
// (align has len(s) entries). Bytes of one character share the character's
// range, so a token covering part of a character maps to all of it, as in HF.
type nstring struct {
	s     string
	align []span
	// first is set when the piece starts the input: Metaspace's "first"
	// prepend scheme looks at it.
	first bool
}

func (n nstring) tracked() bool { return n.align != nil }

// sub returns the bytes [i, j) of n with their alignment.
func (n nstring) sub(i, j int) nstring {
	out := nstring{s: n.s[i:j], first: n.first && i == 0}
	if n.align != nil {
		out.align = n.align[i:j]
	}
	return out
}

// newNString starts tracking s, whose first byte is at base in the input.
func newNString(s string, base int, track bool) nstring {
	if !track {
		return nstring{s: s}
	}
	al := make([]span, len(s))
	for i := 0; i < len(s); {
		_, w := utf8.DecodeRuneInString(s[i:])
		sp := span{int32(base + i), int32(base + i + w)}
		for k := 0; k < w; k++ {
			al[i+k] = sp
		}
		i += w
	}
	return nstring{s: s, align: al}
}

// nbuilder assembles a transformed nstring.
type nbuilder struct {
	b     strings.Builder
	align []span
	track bool
}

func newBuilder(n nstring, capHint int) *nbuilder {
	nb := &nbuilder{track: n.tracked()}
	nb.b.Grow(capHint)
	if nb.track {
		nb.align = make([]span, 0, capHint)
	}
	return nb
}

// copy appends n.s[i:j] unchanged.
func (nb *nbuilder) copy(n nstring, i, j int) {
	nb.b.WriteString(n.s[i:j])
	if nb.track {
		nb.align = append(nb.align, n.align[i:j]...)
	}
}

// put appends s as the replacement of n.s[i:j].
func (nb *nbuilder) put(s string, n nstring, i, j int) {
	nb.b.WriteString(s)
	if nb.track {
		var sp span
		switch {
		case j > i:
			sp = span{n.align[i].start, n.align[j-1].end}
		case i < len(n.align):
			sp = span{n.align[i].start, n.align[i].start}
		case len(n.align) > 0:
			sp = span{n.align[len(n.align)-1].end, n.align[len(n.align)-1].end}
		}
		for range len(s) {
			nb.align = append(nb.align, sp)
		}
	}
}

func (nb *nbuilder) done() nstring {
	if !nb.track {
		return nstring{s: nb.b.String()}
	}
	return nstring{s: nb.b.String(), align: nb.align}
}

// doneFrom finishes a transformation of n, keeping n's place in the input.
func (nb *nbuilder) doneFrom(n nstring) nstring {
	out := nb.done()
	out.first = n.first
	return out
}

// normalizer is one step of tokenizer.json's "normalizer".
type normalizer interface {
	normalize(n nstring) nstring
}

type seqNormalizer []normalizer

func (q seqNormalizer) normalize(n nstring) nstring {
	for _, x := range q {
		n = x.normalize(n)
	}
	return n
}

// prependNormalizer adds its text in front of non-empty input; the added
// bytes map to the first character, as HF aligns them.
type prependNormalizer struct{ prepend string }

func (p prependNormalizer) normalize(n nstring) nstring {
	if n.s == "" {
		return n
	}
	if !n.tracked() {
		return nstring{s: p.prepend + n.s, first: n.first}
	}
	nb := newBuilder(n, len(p.prepend)+len(n.s))
	_, w := utf8.DecodeRuneInString(n.s)
	nb.put(p.prepend, n, 0, w)
	nb.copy(n, 0, len(n.s))
	return nb.doneFrom(n)
}

// replaceNormalizer replaces every match of a literal or a regex.
type replaceNormalizer struct {
	literal string
	re      *regexp.Regexp
	content string
}

func (r replaceNormalizer) normalize(n nstring) nstring {
	if r.re == nil {
		if r.literal == "" || !strings.Contains(n.s, r.literal) {
			return n
		}
		if !n.tracked() {
			return nstring{s: strings.ReplaceAll(n.s, r.literal, r.content), first: n.first}
		}
		nb := newBuilder(n, len(n.s)+len(n.s)/2)
		prev := 0
		for {
			k := strings.Index(n.s[prev:], r.literal)
			if k < 0 {
				break
			}
			nb.copy(n, prev, prev+k)
			nb.put(r.content, n, prev+k, prev+k+len(r.literal))
			prev += k + len(r.literal)
		}
		nb.copy(n, prev, len(n.s))
		return nb.doneFrom(n)
	}
	locs := r.re.FindAllStringIndex(n.s, -1)
	if len(locs) == 0 {
		return n
	}
	nb := newBuilder(n, len(n.s)+len(n.s)/2)
	prev := 0
	for _, l := range locs {
		nb.copy(n, prev, l[0])
		nb.put(r.content, n, l[0], l[1])
		prev = l[1]
	}
	nb.copy(n, prev, len(n.s))
	return nb.doneFrom(n)
}

// unicodeNormalizer applies NFC, NFD, NFKC or NFKD. Each normalization
// segment maps to the original range of the segment it came from.
type unicodeNormalizer struct{ form norm.Form }

func (u unicodeNormalizer) normalize(n nstring) nstring {
	if u.form.IsNormalString(n.s) {
		return n
	}
	if !n.tracked() {
		return nstring{s: u.form.String(n.s), first: n.first}
	}
	nb := newBuilder(n, len(n.s)+8)
	var it norm.Iter
	it.InitString(u.form, n.s)
	for !it.Done() {
		p0 := it.Pos()
		seg := it.Next()
		p1 := it.Pos()
		if string(seg) == n.s[p0:p1] {
			nb.copy(n, p0, p1)
		} else {
			nb.put(string(seg), n, p0, p1)
		}
	}
	return nb.doneFrom(n)
}

// lowercaseNormalizer lowercases character by character, as Rust's
// char::to_lowercase does: İ becomes "i̇" (Go's unicode.ToLower gives "i"),
// and Σ is always σ.
type lowercaseNormalizer struct{}

func (lowercaseNormalizer) normalize(n nstring) nstring {
	nb := newBuilder(n, len(n.s))
	for i := 0; i < len(n.s); {
		r, w := utf8.DecodeRuneInString(n.s[i:])
		switch l := unicode.ToLower(r); {
		case r == 'İ':
			nb.put("i\u0307", n, i, i+w)
		case l != r && !(r == utf8.RuneError && w == 1):
			nb.put(string(l), n, i, i+w)
		default:
			nb.copy(n, i, i+w)
		}
		i += w
	}
	return nb.doneFrom(n)
}

// stripNormalizer removes whitespace at either end.
type stripNormalizer struct{ left, right bool }

func (st stripNormalizer) normalize(n nstring) nstring {
	i, j := 0, len(n.s)
	if st.left {
		i = len(n.s) - len(strings.TrimLeftFunc(n.s, unicode.IsSpace))
	}
	if st.right {
		j = i + len(strings.TrimRightFunc(n.s[i:], unicode.IsSpace))
	}
	return n.sub(i, j)
}

// stripAccentsNormalizer drops combining marks (used after NFD).
type stripAccentsNormalizer struct{}

func (stripAccentsNormalizer) normalize(n nstring) nstring {
	nb := newBuilder(n, len(n.s))
	for i := 0; i < len(n.s); {
		r, w := utf8.DecodeRuneInString(n.s[i:])
		if !unicode.Is(unicode.Mn, r) {
			nb.copy(n, i, i+w)
		}
		i += w
	}
	return nb.doneFrom(n)
}

// pattern is tokenizer.json's {"String": ...} or {"Regex": ...}.
type pattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var h struct {
		Type        string            `json:"type"`
		Normalizers []json.RawMessage `json:"normalizers"`
		Prepend     string            `json:"prepend"`
		Pattern     pattern           `json:"pattern"`
		Content     string            `json:"content"`
		Left        *bool             `json:"strip_left"`
		Right       *bool             `json:"strip_right"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	switch h.Type {
	case "Sequence":
		var q seqNormalizer
		for i, r := range h.Normalizers {
			n, err := parseNormalizer(r)
			if err != nil {
				return nil, fmt.Errorf("normalizer %d of Sequence: %w", i, err)
			}
			if n != nil {
				q = append(q, n)
			}
		}
		return q, nil
	case "Prepend":
		return prependNormalizer{h.Prepend}, nil
	case "Replace":
		switch {
		case h.Pattern.String != nil:
			return replaceNormalizer{literal: *h.Pattern.String, content: h.Content}, nil
		case h.Pattern.Regex != nil:
			re, err := regexp.Compile(*h.Pattern.Regex)
			if err != nil {
				return nil, fmt.Errorf("Replace normalizer: regex %q: %w", *h.Pattern.Regex, err)
			}
			return replaceNormalizer{re: re, content: h.Content}, nil
		}
		return nil, fmt.Errorf("Replace normalizer: pattern has neither String nor Regex")
	case "NFC":
		return unicodeNormalizer{norm.NFC}, nil
	case "NFD":
		return unicodeNormalizer{norm.NFD}, nil
	case "NFKC":
		return unicodeNormalizer{norm.NFKC}, nil
	case "NFKD":
		return unicodeNormalizer{norm.NFKD}, nil
	case "Lowercase":
		return lowercaseNormalizer{}, nil
	case "Strip":
		return stripNormalizer{left: h.Left == nil || *h.Left, right: h.Right == nil || *h.Right}, nil
	case "StripAccents":
		return stripAccentsNormalizer{}, nil
	}
	return nil, fmt.Errorf("normalizer type %q is not supported (supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents)", h.Type)
}
