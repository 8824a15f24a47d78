package tokenize

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decoder is one step of tokenizer.json's "decoder": it rewrites the list of
// token strings; Decode joins what the last step leaves.
type decoder interface {
	decodeChain(tokens []string) []string
}

type seqDecoder []decoder

func (q seqDecoder) decodeChain(tokens []string) []string {
	for _, d := range q {
		tokens = d.decodeChain(tokens)
	}
	return tokens
}

// byteLevelDecoder maps byte-level characters back to bytes. A token with a
// character outside the byte alphabet (an added token such as "<|eot_id|>"
// with a space) keeps its UTF-8 bytes, as in HF. Invalid UTF-8 becomes
// U+FFFD the way Rust's String::from_utf8_lossy does.
type byteLevelDecoder struct{}

func (byteLevelDecoder) decodeChain(tokens []string) []string {
	var b []byte
	for _, t := range tokens {
		mark := len(b)
		ok := true
		for _, r := range t {
			c, in := charToByte(r)
			if !in {
				ok = false
				break
			}
			b = append(b, c)
		}
		if !ok {
			b = append(b[:mark], t...)
		}
	}
	return []string{lossyUTF8(b)}
}

// lossyUTF8 is Rust's String::from_utf8_lossy: each maximal ill-formed
// subsequence becomes one U+FFFD (Go's conversions replace byte by byte).
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for i := 0; i < len(b); {
		r, w := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || w > 1 {
			sb.Write(b[i : i+w])
			i += w
			continue
		}
		sb.WriteRune(utf8.RuneError)
		i += invalidPrefixLen(b[i:])
	}
	return sb.String()
}

// invalidPrefixLen returns the length of the maximal prefix of b that could
// start a valid sequence (at least 1), per the Unicode "maximal subpart"
// rule that Rust follows.
func invalidPrefixLen(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 1; k <= need && k < len(b); k++ {
		x := b[k]
		if k == 1 {
			if x < lo || x > hi {
				break
			}
		} else if x < 0x80 || x > 0xBF {
			break
		}
		n++
	}
	return n
}

// byteFallbackDecoder turns runs of <0xXX> tokens into text: valid UTF-8 as
// one token, otherwise one U+FFFD per byte.
type byteFallbackDecoder struct{}

func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(t[3:5], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

func (byteFallbackDecoder) decodeChain(tokens []string) []string {
	out := make([]string, 0, len(tokens))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range tokens {
		if b, ok := parseByteToken(t); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

type fuseDecoder struct{}

func (fuseDecoder) decodeChain(tokens []string) []string {
	return []string{strings.Join(tokens, "")}
}

// stripDecoder removes up to start copies of content from the left of each
// token and up to stop from the right.
type stripDecoder struct {
	content     rune
	start, stop int
}

func (d stripDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		chars := []rune(t)
		a := 0
		for a < d.start && a < len(chars) && chars[a] == d.content {
			a++
		}
		b := len(chars)
		for k := 0; k < d.stop && b > a && chars[b-1] == d.content; k++ {
			b--
		}
		out[i] = string(chars[a:b])
	}
	return out
}

type replaceDecoder struct{ r replaceNormalizer }

func (d replaceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = d.r.normalize(nstring{s: t}).s
	}
	return out
}

// metaspaceDecoder turns the replacement character back into spaces and,
// unless the prepend scheme is "never", drops it from the first token.
type metaspaceDecoder struct {
	replacement rune
	dropFirst   bool
}

func (d metaspaceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		var sb strings.Builder
		for _, r := range t {
			switch {
			case r != d.replacement:
				sb.WriteRune(r)
			case i == 0 && d.dropFirst:
			default:
				sb.WriteByte(' ')
			}
		}
		out[i] = sb.String()
	}
	return out
}

func parseDecoder(raw json.RawMessage) (decoder, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var h struct {
		Type           string            `json:"type"`
		Decoders       []json.RawMessage `json:"decoders"`
		Pattern        pattern           `json:"pattern"`
		Content        json.RawMessage   `json:"content"`
		Start          int               `json:"start"`
		Stop           int               `json:"stop"`
		Replacement    string            `json:"replacement"`
		PrependScheme  string            `json:"prepend_scheme"`
		AddPrefixSpace *bool             `json:"add_prefix_space"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	switch h.Type {
	case "Sequence":
		var q seqDecoder
		for i, r := range h.Decoders {
			d, err := parseDecoder(r)
			if err != nil {
				return nil, fmt.Errorf("decoder %d of Sequence: %w", i, err)
			}
			if d != nil {
				q = append(q, d)
			}
		}
		return q, nil
	case "ByteLevel":
		return byteLevelDecoder{}, nil
	case "ByteFallback":
		return byteFallbackDecoder{}, nil
	case "Fuse":
		return fuseDecoder{}, nil
	case "Strip":
		var c string
		if err := json.Unmarshal(h.Content, &c); err != nil || utf8.RuneCountInString(c) != 1 {
			return nil, fmt.Errorf("Strip decoder: content %s is not one character", h.Content)
		}
		r, _ := utf8.DecodeRuneInString(c)
		return stripDecoder{content: r, start: h.Start, stop: h.Stop}, nil
	case "Replace":
		var c string
		if err := json.Unmarshal(h.Content, &c); err != nil {
			return nil, fmt.Errorf("Replace decoder: content: %w", err)
		}
		switch {
		case h.Pattern.String != nil:
			return replaceDecoder{replaceNormalizer{literal: *h.Pattern.String, content: c}}, nil
		case h.Pattern.Regex != nil:
			re, err := regexp.Compile(*h.Pattern.Regex)
			if err != nil {
				return nil, fmt.Errorf("Replace decoder: regex %q: %w", *h.Pattern.Regex, err)
			}
			return replaceDecoder{replaceNormalizer{re: re, content: c}}, nil
		}
		return nil, fmt.Errorf("Replace decoder: pattern has neither String nor Regex")
	case "Metaspace":
		rep := h.Replacement
		if rep == "" {
			rep = "▁"
		}
		r, _ := utf8.DecodeRuneInString(rep)
		drop := h.PrependScheme != "never"
		if h.PrependScheme == "" && h.AddPrefixSpace != nil {
			drop = *h.AddPrefixSpace
		}
		return metaspaceDecoder{replacement: r, dropFirst: drop}, nil
	}
	return nil, fmt.Errorf("decoder type %q is not supported (supported: Sequence, ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace)", h.Type)
}
