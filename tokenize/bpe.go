package tokenize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"unicode/utf8"
)

// bpe is HF's BPE model: merges applied by rank to the characters of each
// pre-token, with optional byte fallback and unknown-token fusing.
type bpe struct {
	vocab  map[string]int // token string as in tokenizer.json → id
	vocabR []string       // id → token string ("" where the model has no id)

	// merges maps a pair of ids (left<<32 | right) to rank<<32 | merged id.
	merges map[uint64]uint64

	unkID        int // -1 when the model has no unk_token
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix

	// byteLevel: the input is raw bytes and rawVocab holds the vocabulary
	// with the byte-level characters turned back into bytes.
	byteLevel bool
	rawVocab  map[string]int
	// byteIDs: byte-level, the id of each single byte; with byte fallback,
	// the id of <0xXX>. -1 when missing.
	byteIDs [256]int
	// charIDs: ids of the single-character tokens (non-byte-level models);
	// bmpIDs holds those of the Basic Multilingual Plane densely (id+1, 0
	// for none) because the lookup runs once per input character.
	charIDs map[rune]int
	bmpIDs  []int32

	// spSplit enables cutting SentencePiece-style words before "▁" (see
	// segments); noCutAfter lists the characters after which a cut is not
	// safe because a merge joins them with a following "▁".
	spSplit    bool
	noCutAfter map[rune]bool

	cache wordCache
}

// maxVocabID bounds ids: id → token is a slice, and no real vocabulary
// comes near 16M entries.
const maxVocabID = 1 << 24

// mergeRank returns the rank and result of merging a and b.
func (m *bpe) mergeRank(a, b int) (rank, id int, ok bool) {
	v, ok := m.merges[uint64(uint32(a))<<32|uint64(uint32(b))]
	return int(v >> 32), int(uint32(v)), ok
}

type bpeJSON struct {
	Type                    string         `json:"type"`
	UnkToken                *string        `json:"unk_token"`
	ContinuingSubwordPrefix *string        `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string        `json:"end_of_word_suffix"`
	FuseUnk                 bool           `json:"fuse_unk"`
	ByteFallback            bool           `json:"byte_fallback"`
	IgnoreMerges            bool           `json:"ignore_merges"`
	Vocab                   map[string]int `json:"-"`
	Merges                  [][2][]byte    `json:"-"`
}

func parseBPE(raw json.RawMessage, byteLevel bool) (*bpe, error) {
	var j bpeJSON
	fields, err := topLevel(raw)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	small := map[string]json.RawMessage{}
	for k, v := range fields {
		if k != "vocab" && k != "merges" {
			small[k] = v
		}
	}
	b, _ := json.Marshal(small)
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if j.Type != "" && j.Type != "BPE" {
		return nil, fmt.Errorf("model type %q is not supported (only BPE)", j.Type)
	}
	if v := fields["vocab"]; v != nil {
		if j.Vocab, err = parseVocab(v); err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
	}
	if v := fields["merges"]; v != nil && string(v) != "null" {
		if j.Merges, err = parseMerges(v); err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
	}
	if j.Vocab == nil {
		return nil, fmt.Errorf("model: no vocab")
	}
	m := &bpe{
		vocab:        j.Vocab,
		unkID:        -1,
		fuseUnk:      j.FuseUnk,
		byteFallback: j.ByteFallback,
		ignoreMerges: j.IgnoreMerges,
		byteLevel:    byteLevel,
	}
	if j.ContinuingSubwordPrefix != nil {
		m.prefix = *j.ContinuingSubwordPrefix
	}
	if j.EndOfWordSuffix != nil {
		m.suffix = *j.EndOfWordSuffix
	}
	maxID := -1
	for tok, id := range j.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("model: vocab token %q has negative id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	if maxID >= maxVocabID {
		return nil, fmt.Errorf("model: vocab id %d is too large (ids index a dense table; the limit is %d)", maxID, maxVocabID)
	}
	m.vocabR = make([]string, maxID+1)
	for tok, id := range j.Vocab {
		m.vocabR[id] = tok
	}
	if j.UnkToken != nil {
		id, ok := j.Vocab[*j.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model: unk_token %q is not in the vocab", *j.UnkToken)
		}
		m.unkID = id
	}

	m.merges = make(map[uint64]uint64, len(j.Merges))
	merged := make([]int32, len(j.Merges))
	var joined []byte
	for rank, mr := range j.Merges {
		a, b := mr[0], mr[1]
		ia, ok1 := j.Vocab[string(a)]
		ib, ok2 := j.Vocab[string(b)]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("model: merge %d (%q %q): token not in the vocab", rank, a, b)
		}
		joined = append(append(joined[:0], a...), bytes.TrimPrefix(b, []byte(m.prefix))...)
		id, ok := j.Vocab[string(joined)]
		if !ok {
			return nil, fmt.Errorf("model: merge %d (%q %q): result %q is not in the vocab", rank, a, b, joined)
		}
		merged[rank] = int32(id)
		// Later duplicates win, as in HF's map built in file order.
		m.merges[uint64(uint32(ia))<<32|uint64(uint32(ib))] = uint64(rank)<<32 | uint64(uint32(id))
	}

	for i := range m.byteIDs {
		m.byteIDs[i] = -1
	}
	if byteLevel {
		m.rawVocab = make(map[string]int, len(j.Vocab))
		for tok, id := range j.Vocab {
			if raw, ok := fromByteLevel(tok); ok {
				m.rawVocab[raw] = id
			}
		}
		for b := 0; b < 256; b++ {
			if id, ok := m.rawVocab[string([]byte{byte(b)})]; ok {
				m.byteIDs[b] = id
			}
		}
	} else {
		m.charIDs = make(map[rune]int)
		m.bmpIDs = make([]int32, 0x10000)
		for tok, id := range j.Vocab {
			if r, w := utf8.DecodeRuneInString(tok); w == len(tok) && w > 0 && (r != utf8.RuneError || w > 1) {
				m.charIDs[r] = id
				if r < 0x10000 {
					m.bmpIDs[r] = int32(id + 1)
				}
			}
		}
		if m.byteFallback {
			for b := 0; b < 256; b++ {
				if id, ok := j.Vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
					m.byteIDs[b] = id
				}
			}
		}
		m.initSPSplit(merged)
	}
	m.cache.init()
	return m, nil
}

const metaspace = "▁"

// initSPSplit decides whether words may be cut before "▁". BPE on a whole
// SentencePiece-style text (no pre-tokenizer: Llama 2, Mistral, Gemma) gives
// the same ids as BPE on its parts when no merge can build a token across a
// cut, and the parts are short enough to cache. A cut between characters c
// and "▁" is safe when c is a vocabulary character (not byte fallback or
// unknown) and no token the merges build holds c followed by "▁".
func (m *bpe) initSPSplit(merged []int32) {
	if m.prefix != "" || m.suffix != "" {
		return
	}
	if _, ok := m.vocab[metaspace]; !ok {
		return
	}
	m.noCutAfter = map[rune]bool{}
	for _, id := range merged {
		tok := m.vocabR[id]
		for k := strings.Index(tok, metaspace); k >= 0; {
			if k > 0 {
				r, _ := utf8.DecodeLastRuneInString(tok[:k])
				if string(r) != metaspace {
					m.noCutAfter[r] = true
				}
			}
			next := strings.Index(tok[k+len(metaspace):], metaspace)
			if next < 0 {
				break
			}
			k += len(metaspace) + next
		}
	}
	m.spSplit = true
}

// fromByteLevel maps a byte-level token back to its bytes.
func fromByteLevel(tok string) (string, bool) {
	b := make([]byte, 0, len(tok))
	for _, r := range tok {
		c, ok := charToByte(r)
		if !ok {
			return "", false
		}
		b = append(b, c)
	}
	return string(b), true
}

// byteToChar is GPT-2's map from bytes to printable characters.
var byteToChar, charToByteMap = func() (b2c [256]rune, c2b map[rune]byte) {
	c2b = make(map[rune]byte, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if '!' <= b && b <= '~' || 0xA1 <= b && b <= 0xAC || 0xAE <= b && b <= 0xFF {
			b2c[b] = rune(b)
		} else {
			b2c[b] = rune(256 + n)
			n++
		}
		c2b[b2c[b]] = byte(b)
	}
	return b2c, c2b
}()

func charToByte(r rune) (byte, bool) {
	b, ok := charToByteMap[r]
	return b, ok
}

// symbol is one part of a word during merging.
type symbol struct {
	id         int32
	len        int32 // bytes of the input
	prev, next int32
}

// bpeScratch holds the buffers one encoding reuses.
type bpeScratch struct {
	syms  []symbol
	ranks []uint32
	heap  []uint64
	word  []int32 // ids then lengths, for the cache
}

// tokenize appends the ids of word to ids and, with lens, their byte
// lengths in word.
func (m *bpe) tokenize(word string, sc *bpeScratch, ids []int, lens []int32, wantLens bool) ([]int, []int32) {
	if word == "" {
		return ids, lens
	}
	if m.spSplit && len(word) > 16 {
		start := 0
		prevCut := false
		for i := 0; i < len(word); {
			r, w := utf8.DecodeRuneInString(word[i:])
			if i > start && strings.HasPrefix(word[i:], metaspace) && prevCut {
				ids, lens = m.tokenizeWord(word[start:i], sc, ids, lens, wantLens)
				start = i
			}
			_, known := m.charID(r)
			prevCut = known && r != '▁' && !(len(m.noCutAfter) > 0 && m.noCutAfter[r]) && !(r == utf8.RuneError && w == 1)
			i += w
		}
		return m.tokenizeWord(word[start:], sc, ids, lens, wantLens)
	}
	return m.tokenizeWord(word, sc, ids, lens, wantLens)
}

// charID returns the id of the single-character token r.
func (m *bpe) charID(r rune) (int, bool) {
	if r >= 0 && r < 0x10000 {
		id := m.bmpIDs[r]
		return int(id) - 1, id > 0
	}
	id, ok := m.charIDs[r]
	return id, ok
}

const maxCachedWord = 256

func (m *bpe) tokenizeWord(word string, sc *bpeScratch, ids []int, lens []int32, wantLens bool) ([]int, []int32) {
	if m.ignoreMerges {
		v := m.vocab
		if m.byteLevel {
			v = m.rawVocab
		}
		if id, ok := v[word]; ok {
			ids = append(ids, id)
			if wantLens {
				lens = append(lens, int32(len(word)))
			}
			return ids, lens
		}
	}
	cacheable := len(word) < maxCachedWord
	if cacheable {
		if w, ok := m.cache.get(word); ok {
			return appendWord(w, ids, lens, wantLens)
		}
	}
	sc.syms = m.initialSymbols(word, sc.syms[:0])
	if len(sc.syms) <= 48 {
		m.mergeSmall(sc)
	} else {
		m.mergeHeap(sc)
	}
	w := sc.word[:0]
	for i := range sc.syms {
		if sc.syms[i].len > 0 {
			w = append(w, sc.syms[i].id)
		}
	}
	for i := range sc.syms {
		if sc.syms[i].len > 0 {
			w = append(w, sc.syms[i].len)
		}
	}
	sc.word = w
	if cacheable {
		m.cache.put(word, append([]int32(nil), w...))
	}
	return appendWord(w, ids, lens, wantLens)
}

// appendWord appends a merged word stored as ids followed by lengths.
func appendWord(w []int32, ids []int, lens []int32, wantLens bool) ([]int, []int32) {
	n := len(w) / 2
	for _, id := range w[:n] {
		ids = append(ids, int(id))
	}
	if wantLens {
		lens = append(lens, w[n:]...)
	}
	return ids, lens
}

// initialSymbols splits word into characters (bytes for byte-level models)
// as HF's merge_word does, including its byte fallback and unknown handling.
func (m *bpe) initialSymbols(word string, syms []symbol) []symbol {
	add := func(id, n int) {
		syms = append(syms, symbol{id: int32(id), len: int32(n)})
	}
	unkLen := 0 // pending unknown run, in bytes; 0 when none
	flushUnk := func() {
		if unkLen > 0 {
			add(m.unkID, unkLen)
			unkLen = 0
		}
	}
	plain := m.prefix == "" && m.suffix == ""
	for i := 0; i < len(word); {
		w := 1
		id, ok := -1, false
		if m.byteLevel {
			if plain {
				id = m.byteIDs[word[i]]
				ok = id >= 0
			} else {
				id, ok = m.rawVocab[m.affix(word[i:i+1], i == 0, i+1 == len(word))]
			}
		} else {
			var r rune
			r, w = utf8.DecodeRuneInString(word[i:])
			if plain {
				if r == utf8.RuneError && w == 1 {
					ok = false
				} else {
					id, ok = m.charID(r)
				}
			} else {
				id, ok = m.vocab[m.affix(word[i:i+w], i == 0, i+w == len(word))]
			}
		}
		if ok {
			flushUnk()
			add(id, w)
			i += w
			continue
		}
		if m.byteFallback && !m.byteLevel {
			s := word[i : i+w]
			if !plain {
				s = m.affix(s, i == 0, i+w == len(word))
			}
			all := true
			for k := 0; k < len(s); k++ {
				if m.byteIDs[s[k]] < 0 {
					all = false
					break
				}
			}
			if all {
				// HF leaves a pending unknown run open across byte
				// fallback tokens; so does this.
				for k := 0; k < len(s); k++ {
					add(m.byteIDs[s[k]], 1)
				}
				i += w
				continue
			}
		}
		if m.unkID >= 0 {
			if unkLen > 0 && !m.fuseUnk {
				flushUnk()
			}
			unkLen += w
		}
		i += w
	}
	flushUnk()
	for k := range syms {
		syms[k].prev = int32(k - 1)
		syms[k].next = int32(k + 1)
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	return syms
}

// affix adds the continuing-subword prefix and end-of-word suffix.
func (m *bpe) affix(s string, first, last bool) string {
	if !first {
		s = m.prefix + s
	}
	if last {
		s += m.suffix
	}
	return s
}

const noRank = ^uint32(0)

// mergeSmall merges a short word: the lowest-ranked pair, leftmost first,
// until none is left. It gives HF's heap order without the heap.
func (m *bpe) mergeSmall(sc *bpeScratch) {
	syms := sc.syms
	n := len(syms)
	if n < 2 {
		return
	}
	// ranks[i] is the rank of the pair (syms[i], syms[i+1]); merged
	// symbols are removed from both slices in place (the links unused).
	ranks := sc.ranks[:0]
	for i := 0; i+1 < n; i++ {
		ranks = append(ranks, m.pairRank(syms[i].id, syms[i+1].id))
	}
	for {
		best, bi := noRank, -1
		for i, r := range ranks {
			if r < best {
				best, bi = r, i
			}
		}
		if bi < 0 {
			break
		}
		_, nid, _ := m.mergeRank(int(syms[bi].id), int(syms[bi+1].id))
		syms[bi].id = int32(nid)
		syms[bi].len += syms[bi+1].len
		syms = append(syms[:bi+1], syms[bi+2:]...)
		ranks = append(ranks[:bi], ranks[bi+1:]...)
		if bi < len(ranks) {
			ranks[bi] = m.pairRank(syms[bi].id, syms[bi+1].id)
		}
		if bi > 0 {
			ranks[bi-1] = m.pairRank(syms[bi-1].id, syms[bi].id)
		}
	}
	sc.syms = syms
	sc.ranks = ranks
}

func (m *bpe) pairRank(a, b int32) uint32 {
	v, ok := m.merges[uint64(uint32(a))<<32|uint64(uint32(b))]
	if !ok {
		return noRank
	}
	return uint32(v >> 32)
}

// mergeHeap is HF's Word::merge_all: a priority queue of (rank, position)
// over a linked list of symbols, skipping stale entries.
func (m *bpe) mergeHeap(sc *bpeScratch) {
	syms := sc.syms
	h := sc.heap[:0]
	push := func(rank uint32, pos int32) {
		h = append(h, uint64(rank)<<32|uint64(uint32(pos)))
		for i := len(h) - 1; i > 0; {
			p := (i - 1) / 2
			if h[p] <= h[i] {
				break
			}
			h[p], h[i] = h[i], h[p]
			i = p
		}
	}
	pop := func() uint64 {
		top := h[0]
		last := len(h) - 1
		h[0] = h[last]
		h = h[:last]
		for i := 0; ; {
			l, r, s := 2*i+1, 2*i+2, i
			if l < len(h) && h[l] < h[s] {
				s = l
			}
			if r < len(h) && h[r] < h[s] {
				s = r
			}
			if s == i {
				break
			}
			h[s], h[i] = h[i], h[s]
			i = s
		}
		return top
	}
	for i := 0; i+1 < len(syms); i++ {
		if r := m.pairRank(syms[i].id, syms[i+1].id); r != noRank {
			push(r, int32(i))
		}
	}
	for len(h) > 0 {
		top := pop()
		rank, pos := uint32(top>>32), int32(uint32(top))
		cur := &syms[pos]
		if cur.len == 0 || cur.next < 0 {
			continue
		}
		nextPos := cur.next
		right := syms[nextPos]
		if m.pairRank(cur.id, right.id) != rank {
			continue
		}
		_, nid, _ := m.mergeRank(int(cur.id), int(right.id))
		cur.id = int32(nid)
		cur.len += right.len
		cur.next = right.next
		syms[nextPos].len = 0
		if right.next >= 0 {
			syms[right.next].prev = pos
		}
		if cur.prev >= 0 {
			if r := m.pairRank(syms[cur.prev].id, cur.id); r != noRank {
				push(r, cur.prev)
			}
		}
		if cur.next >= 0 {
			if r := m.pairRank(cur.id, syms[cur.next].id); r != noRank {
				push(r, pos)
			}
		}
	}
	sc.heap = h
}

// wordCache remembers merged words. It is shared by all goroutines, so it
// is split into shards, each with its own lock, and stops growing when full
// (as HF's cache does) instead of evicting.
type wordCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

const (
	cacheShards   = 32
	cacheShardCap = 4096
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[string][]int32
	_  [40]byte // keep shards on separate cache lines
}

func (c *wordCache) init() {
	c.seed = maphash.MakeSeed()
	for i := range c.shards {
		c.shards[i].m = make(map[string][]int32)
	}
}

func (c *wordCache) shard(word string) *cacheShard {
	return &c.shards[maphash.String(c.seed, word)%cacheShards]
}

func (c *wordCache) get(word string) ([]int32, bool) {
	s := c.shard(word)
	s.mu.RLock()
	w, ok := s.m[word]
	s.mu.RUnlock()
	return w, ok
}

func (c *wordCache) put(word string, w []int32) {
	s := c.shard(word)
	s.mu.Lock()
	if len(s.m) < cacheShardCap {
		s.m[strings.Clone(word)] = w
	}
	s.mu.Unlock()
}
