package tokenize

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// preTokenizer is one step of tokenizer.json's "pre_tokenizer": it cuts a
// piece into smaller pieces (and may rewrite them), appending them to out.
type preTokenizer interface {
	split(n nstring, out []nstring) []nstring
}

// behavior is HF's SplitDelimiterBehavior: what becomes of the delimiters.
type behavior int

const (
	removed behavior = iota
	isolated
	mergedWithPrevious
	mergedWithNext
	contiguous
)

func parseBehavior(s string) (behavior, error) {
	switch s {
	case "Removed":
		return removed, nil
	case "Isolated":
		return isolated, nil
	case "MergedWithPrevious":
		return mergedWithPrevious, nil
	case "MergedWithNext":
		return mergedWithNext, nil
	case "Contiguous":
		return contiguous, nil
	}
	return 0, fmt.Errorf("split behavior %q is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous", s)
}

// part is a stretch [start, end) of a piece, a delimiter (match) or not.
type part struct {
	start, end int
	match      bool
}

// applyBehavior turns the parts covering n into pieces, as HF's
// NormalizedString::split does, dropping empty ones.
func applyBehavior(n nstring, parts []part, b behavior, out []nstring) []nstring {
	emit := func(i, j int) {
		if j > i {
			out = append(out, n.sub(i, j))
		}
	}
	switch b {
	case removed:
		for _, p := range parts {
			if !p.match {
				emit(p.start, p.end)
			}
		}
	case isolated:
		for _, p := range parts {
			emit(p.start, p.end)
		}
	case mergedWithPrevious:
		var acc []part
		prevMatch := false
		for _, p := range parts {
			if p.match && !prevMatch && len(acc) > 0 {
				acc[len(acc)-1].end = p.end
			} else {
				acc = append(acc, p)
			}
			prevMatch = p.match
		}
		for _, p := range acc {
			emit(p.start, p.end)
		}
	case mergedWithNext:
		var acc []part
		prevMatch := false
		for k := len(parts) - 1; k >= 0; k-- {
			p := parts[k]
			if p.match && !prevMatch && len(acc) > 0 {
				acc[len(acc)-1].start = p.start
			} else {
				acc = append(acc, p)
			}
			prevMatch = p.match
		}
		for k := len(acc) - 1; k >= 0; k-- {
			emit(acc[k].start, acc[k].end)
		}
	case contiguous:
		var acc []part
		prevMatch := false
		for i, p := range parts {
			if i > 0 && p.match == prevMatch {
				acc[len(acc)-1].end = p.end
			} else {
				acc = append(acc, p)
			}
			prevMatch = p.match
		}
		for _, p := range acc {
			emit(p.start, p.end)
		}
	}
	return out
}

// matcher finds the delimiters of a Split pre-tokenizer.
type matcher interface {
	// parts covers s with matches and the stretches between them.
	parts(s string, dst []part) []part
}

// gapParts appends the parts for matches found by next, which returns the
// next match at or after from (start < 0 when there is none).
func gapParts(s string, dst []part, next func(from int) (int, int)) []part {
	prev := 0
	for from := 0; from <= len(s); {
		a, b := next(from)
		if a < 0 {
			break
		}
		if a > prev {
			dst = append(dst, part{prev, a, false})
		}
		dst = append(dst, part{a, b, true})
		prev = b
		if b > a {
			from = b
		} else {
			// An empty match: step over one character so the scan ends.
			if b >= len(s) {
				break
			}
			_, w := utf8.DecodeRuneInString(s[b:])
			from = b + w
		}
	}
	if prev < len(s) {
		dst = append(dst, part{prev, len(s), false})
	}
	return dst
}

type literalMatcher string

func (l literalMatcher) parts(s string, dst []part) []part {
	if l == "" {
		return append(dst, part{0, len(s), false})
	}
	return gapParts(s, dst, func(from int) (int, int) {
		k := strings.Index(s[from:], string(l))
		if k < 0 {
			return -1, -1
		}
		return from + k, from + k + len(l)
	})
}

func (g gptStyle) parts(s string, dst []part) []part {
	for i := 0; i < len(s); {
		_, j := g.find(s, i)
		dst = append(dst, part{i, j, true})
		i = j
	}
	return dst
}

type regexMatcher struct{ re *regexp.Regexp }

func (r regexMatcher) parts(s string, dst []part) []part {
	prev := 0
	for _, m := range r.re.FindAllStringIndex(s, -1) {
		if m[0] > prev {
			dst = append(dst, part{prev, m[0], false})
		}
		dst = append(dst, part{m[0], m[1], true})
		prev = m[1]
	}
	if prev < len(s) {
		dst = append(dst, part{prev, len(s), false})
	}
	return dst
}

// funcMatcher makes every character for which f holds a match of its own,
// as HF's character-predicate patterns do.
type funcMatcher func(rune) bool

func (f funcMatcher) parts(s string, dst []part) []part {
	prev := 0
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if f(r) {
			if i > prev {
				dst = append(dst, part{prev, i, false})
			}
			dst = append(dst, part{i, i + w, true})
			prev = i + w
		}
		i += w
	}
	if prev < len(s) {
		dst = append(dst, part{prev, len(s), false})
	}
	return dst
}

type splitPre struct {
	m      matcher
	b      behavior
	invert bool
}

func (sp splitPre) split(n nstring, out []nstring) []nstring {
	if g, ok := sp.m.(gptStyle); ok && sp.b == isolated && !sp.invert {
		// The hot path of Llama 3 and Qwen: every match is a piece.
		for i := 0; i < len(n.s); {
			_, j := g.find(n.s, i)
			out = append(out, n.sub(i, j))
			i = j
		}
		return out
	}
	parts := sp.m.parts(n.s, nil)
	if sp.invert {
		for i := range parts {
			parts[i].match = !parts[i].match
		}
	}
	return applyBehavior(n, parts, sp.b, out)
}

// byteLevelPre is HF's ByteLevel pre-tokenizer. The mapping of bytes to
// printable characters is not done here: the BPE model of a byte-level
// tokenizer works on raw bytes (its vocabulary is mapped back once at load).
type byteLevelPre struct {
	addPrefixSpace bool
	useRegex       bool
}

func (bl byteLevelPre) split(n nstring, out []nstring) []nstring {
	if bl.addPrefixSpace && !strings.HasPrefix(n.s, " ") {
		n = prependNormalizer{" "}.normalize(n)
	}
	if !bl.useRegex {
		return append(out, n)
	}
	return splitPre{m: gpt2Style, b: isolated}.split(n, out)
}

type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

type metaspacePre struct {
	replacement string
	scheme      prependScheme
	cut         bool // HF's "split": cut before each replacement character
}

func (ms metaspacePre) split(n nstring, out []nstring) []nstring {
	n = replaceNormalizer{literal: " ", content: ms.replacement}.normalize(n)
	if !strings.HasPrefix(n.s, ms.replacement) && (ms.scheme == prependAlways || ms.scheme == prependFirst && n.first) {
		n = prependNormalizer{ms.replacement}.normalize(n)
	}
	if !ms.cut {
		return append(out, n)
	}
	return applyBehavior(n, literalMatcher(ms.replacement).parts(n.s, nil), mergedWithNext, out)
}

type seqPre []preTokenizer

func (q seqPre) split(n nstring, out []nstring) []nstring {
	pieces := []nstring{n}
	for _, p := range q {
		var next []nstring
		for _, x := range pieces {
			next = p.split(x, next)
		}
		pieces = next
	}
	return append(out, pieces...)
}

func isRustWhitespace(r rune) bool { return unicode.Is(unicode.White_Space, r) }

func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

// isPunctuation is HF's is_punc: ASCII punctuation in Rust's sense (which
// takes in the ASCII symbols $+<=>^`|~) or a Unicode P* character.
func isPunctuation(r rune) bool {
	return unicode.IsPunct(r) || r < utf8.RuneSelf && unicode.IsSymbol(r)
}

// whitespacePre is HF's Whitespace: \w+|[^\w\s]+ kept, whitespace dropped.
type whitespacePre struct{}

func (whitespacePre) split(n nstring, out []nstring) []nstring {
	s := n.s
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if isRustWhitespace(r) {
			i += w
			continue
		}
		word := isWordChar(r)
		j := i + w
		for j < len(s) {
			r2, w2 := utf8.DecodeRuneInString(s[j:])
			if isRustWhitespace(r2) || isWordChar(r2) != word {
				break
			}
			j += w2
		}
		out = append(out, n.sub(i, j))
		i = j
	}
	return out
}

func parsePreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var h struct {
		Type           string            `json:"type"`
		PreTokenizers  []json.RawMessage `json:"pretokenizers"`
		Pattern        pattern           `json:"pattern"`
		Behavior       string            `json:"behavior"`
		Invert         bool              `json:"invert"`
		AddPrefixSpace *bool             `json:"add_prefix_space"`
		UseRegex       *bool             `json:"use_regex"`
		Replacement    string            `json:"replacement"`
		PrependScheme  string            `json:"prepend_scheme"`
		Split          *bool             `json:"split"`
		Individual     bool              `json:"individual_digits"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch h.Type {
	case "Sequence":
		var q seqPre
		for i, r := range h.PreTokenizers {
			p, err := parsePreTokenizer(r)
			if err != nil {
				return nil, fmt.Errorf("pre-tokenizer %d of Sequence: %w", i, err)
			}
			if p != nil {
				q = append(q, p)
			}
		}
		for i, p := range q {
			if _, ok := p.(byteLevelPre); ok && i != len(q)-1 {
				return nil, fmt.Errorf("pre_tokenizer: ByteLevel must be the last step of a Sequence (later steps would see byte-level characters)")
			}
		}
		return q, nil
	case "Split":
		b, err := parseBehavior(h.Behavior)
		if err != nil {
			return nil, fmt.Errorf("Split pre-tokenizer: %w", err)
		}
		var m matcher
		switch {
		case h.Pattern.String != nil:
			m = literalMatcher(*h.Pattern.String)
		case h.Pattern.Regex != nil:
			if g, ok := knownGPTPatterns[*h.Pattern.Regex]; ok {
				m = g
				break
			}
			re, err := regexp.Compile(*h.Pattern.Regex)
			if err != nil {
				return nil, fmt.Errorf("Split pre-tokenizer: regex %q is neither a known GPT-style pattern nor one Go's regexp accepts: %w", *h.Pattern.Regex, err)
			}
			m = regexMatcher{re}
		default:
			return nil, fmt.Errorf("Split pre-tokenizer: pattern has neither String nor Regex")
		}
		return splitPre{m: m, b: b, invert: h.Invert}, nil
	case "ByteLevel":
		return byteLevelPre{
			addPrefixSpace: h.AddPrefixSpace == nil || *h.AddPrefixSpace,
			useRegex:       h.UseRegex == nil || *h.UseRegex,
		}, nil
	case "Metaspace":
		ms := metaspacePre{replacement: h.Replacement, cut: h.Split == nil || *h.Split}
		if ms.replacement == "" {
			ms.replacement = "▁"
		}
		switch h.PrependScheme {
		case "", "always":
			ms.scheme = prependAlways
			if h.PrependScheme == "" && h.AddPrefixSpace != nil && !*h.AddPrefixSpace {
				ms.scheme = prependNever
			}
		case "first":
			ms.scheme = prependFirst
		case "never":
			ms.scheme = prependNever
		default:
			return nil, fmt.Errorf("Metaspace pre-tokenizer: prepend_scheme %q is not always, first or never", h.PrependScheme)
		}
		return ms, nil
	case "Digits":
		if h.Individual {
			return splitPre{m: funcMatcher(unicode.IsNumber), b: isolated}, nil
		}
		return splitPre{m: funcMatcher(unicode.IsNumber), b: contiguous}, nil
	case "Whitespace":
		return whitespacePre{}, nil
	case "WhitespaceSplit":
		return splitPre{m: funcMatcher(isRustWhitespace), b: removed}, nil
	case "Punctuation":
		b := isolated
		if h.Behavior != "" {
			var err error
			if b, err = parseBehavior(h.Behavior); err != nil {
				return nil, fmt.Errorf("Punctuation pre-tokenizer: %w", err)
			}
		}
		return splitPre{m: funcMatcher(isPunctuation), b: b}, nil
	case "BertPreTokenizer":
		return seqPre{
			splitPre{m: funcMatcher(isRustWhitespace), b: removed},
			splitPre{m: funcMatcher(isPunctuation), b: isolated},
		}, nil
	}
	return nil, fmt.Errorf("pre-tokenizer type %q is not supported (supported: Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit, Punctuation, BertPreTokenizer)", h.Type)
}

// hasByteLevel reports whether p maps its output to byte-level characters.
func hasByteLevel(p preTokenizer) bool {
	switch p := p.(type) {
	case byteLevelPre:
		return true
	case seqPre:
		return len(p) > 0 && hasByteLevel(p[len(p)-1])
	}
	return false
}
