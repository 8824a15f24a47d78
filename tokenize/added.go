package tokenize

import (
	"sort"
	"unicode/utf8"
)

// AddedToken is an entry of tokenizer.json's "added_tokens": a token matched
// in the text before the model runs.
type AddedToken struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
	// SingleWord: match only when not inside a word.
	SingleWord bool `json:"single_word"`
	// LStrip and RStrip: the match swallows the whitespace on its left or
	// right.
	LStrip bool `json:"lstrip"`
	RStrip bool `json:"rstrip"`
	// Normalized: match against the normalized text instead of the input.
	Normalized bool `json:"normalized"`
	// Special tokens are skipped by Decode with skipSpecialTokens.
	Special bool `json:"special"`
}

// addedMatcher finds added tokens leftmost-longest, as HF's Aho-Corasick
// automaton with MatchKind::LeftmostLongest does, with a byte trie.
type addedMatcher struct {
	tokens []AddedToken // matched tokens; trie terminals index this
	first  [256]bool    // bytes that can start a token
	nodes  []trieNode
}

type trieNode struct {
	edges    []trieEdge // sorted by byte
	terminal int32      // index into tokens, -1 if none
}

type trieEdge struct {
	b    byte
	node int32
}

func newAddedMatcher(tokens []AddedToken, content func(AddedToken) string) *addedMatcher {
	m := &addedMatcher{nodes: []trieNode{{terminal: -1}}}
	for _, t := range tokens {
		c := content(t)
		if c == "" {
			continue
		}
		m.first[c[0]] = true
		n := int32(0)
		for i := 0; i < len(c); i++ {
			n = m.child(n, c[i])
		}
		// The first token given a content keeps it, like the automaton
		// built from patterns in order.
		if m.nodes[n].terminal < 0 {
			m.nodes[n].terminal = int32(len(m.tokens))
			m.tokens = append(m.tokens, t)
		}
	}
	return m
}

func (m *addedMatcher) child(n int32, b byte) int32 {
	e := m.nodes[n].edges
	k := sort.Search(len(e), func(i int) bool { return e[i].b >= b })
	if k < len(e) && e[k].b == b {
		return e[k].node
	}
	id := int32(len(m.nodes))
	m.nodes = append(m.nodes, trieNode{terminal: -1})
	e = append(e, trieEdge{})
	copy(e[k+1:], e[k:])
	e[k] = trieEdge{b, id}
	m.nodes[n].edges = e
	return id
}

func (m *addedMatcher) next(n int32, b byte) int32 {
	e := m.nodes[n].edges
	if len(e) <= 8 {
		for _, x := range e {
			if x.b == b {
				return x.node
			}
		}
		return -1
	}
	k := sort.Search(len(e), func(i int) bool { return e[i].b >= b })
	if k < len(e) && e[k].b == b {
		return e[k].node
	}
	return -1
}

func (m *addedMatcher) empty() bool { return len(m.tokens) == 0 }

// longestAt returns the index of the longest token starting at s[i] and its
// end, or -1.
func (m *addedMatcher) longestAt(s string, i int) (tok, end int) {
	tok = -1
	n := int32(0)
	for j := i; j < len(s); j++ {
		n = m.next(n, s[j])
		if n < 0 {
			break
		}
		if t := m.nodes[n].terminal; t >= 0 {
			tok, end = int(t), j+1
		}
	}
	return tok, end
}

// segment is a stretch [start, end) of a string: an added token (id >= 0)
// or text to tokenize (id < 0).
type segment struct {
	start, end int
	id         int
}

// split cuts s into text and added-token segments, following HF's
// find_matches: single_word, lstrip and rstrip are applied per match.
func (m *addedMatcher) split(s string, dst []segment) []segment {
	if m.empty() {
		if len(s) > 0 {
			dst = append(dst, segment{0, len(s), -1})
		}
		return dst
	}
	prev := 0
	for i := 0; i < len(s); {
		if !m.first[s[i]] {
			i++
			continue
		}
		k, end := m.longestAt(s, i)
		if k < 0 {
			i++
			continue
		}
		t := m.tokens[k]
		start := i
		if t.SingleWord {
			startOK := start == 0 || !endsWithWord(s[:start])
			stopOK := end == len(s) || !startsWithWord(s[end:])
			if !startOK || !stopOK {
				// HF moves on past the whole rejected match.
				i = end
				continue
			}
		}
		if t.LStrip {
			start = max(leftmostSpaceAtEnd(s[:start]), prev)
		}
		if t.RStrip {
			end += rightmostSpaceAtStart(s[end:])
		}
		if prev < start {
			dst = append(dst, segment{prev, start, -1})
		}
		dst = append(dst, segment{start, end, t.ID})
		prev = end
		i = end
	}
	if prev < len(s) {
		dst = append(dst, segment{prev, len(s), -1})
	}
	return dst
}

// endsWithWord and startsWithWord test for a Unicode \w character (Rust's
// regex \w, which HF uses here) at the end or start of s.
func endsWithWord(s string) bool {
	r, w := utf8.DecodeLastRuneInString(s)
	return w > 0 && isWordChar(r)
}

func startsWithWord(s string) bool {
	r, w := utf8.DecodeRuneInString(s)
	return w > 0 && isWordChar(r)
}

func leftmostSpaceAtEnd(s string) int {
	i := len(s)
	for i > 0 {
		r, w := utf8.DecodeLastRuneInString(s[:i])
		if !isRustWhitespace(r) {
			break
		}
		i -= w
	}
	return i
}

func rightmostSpaceAtStart(s string) int {
	i := 0
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if !isRustWhitespace(r) {
			break
		}
		i += w
	}
	return i
}
