package tokenize

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The special tokens of a tokenizer trained by TrainBPE, as Llama 3 names
// them: its chat template needs the first five, and training pads with the
// last.
const (
	TrainedBOS       = "<|begin_of_text|>"
	TrainedEOS       = "<|end_of_text|>"
	TrainedHeadStart = "<|start_header_id|>"
	TrainedHeadEnd   = "<|end_header_id|>"
	TrainedEOT       = "<|eot_id|>"
	TrainedPad       = "<|finetune_right_pad_id|>"
)

var trainedSpecials = []string{TrainedBOS, TrainedEOS, TrainedHeadStart, TrainedHeadEnd, TrainedEOT, TrainedPad}

// llama3Pattern is the pre-tokenizer split pattern written into
// tokenizer.json, Llama 3's.
const llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// BPETrainOptions configure TrainBPE.
type BPETrainOptions struct {
	// VocabSize is the size of the vocabulary, special tokens included: the
	// 256 byte tokens, the merges, the special tokens. Required.
	VocabSize int
	// MinFrequency stops training when the most frequent pair occurs fewer
	// times; 0 means 2 (a pair seen once teaches nothing).
	MinFrequency int
	// SpecialTokens are added after the six Llama-3-style ones (TrainedBOS …
	// TrainedPad) that the chat template and training need.
	SpecialTokens []string
}

// TrainedTokenizer is a byte-level BPE tokenizer trained by TrainBPE. Its
// ids are the 256 byte tokens, then the merged tokens in the order they were
// learned, then the special tokens.
type TrainedTokenizer struct {
	// Vocab holds the token strings by id, special tokens last, in the
	// byte-to-Unicode alphabet of GPT-2 byte-level BPE.
	Vocab []string
	// Merges are the learned merges in rank order.
	Merges [][2]string
	// Special is the number of special tokens at the end of Vocab.
	Special int
}

// TrainBPE learns a byte-level BPE vocabulary from texts with the Llama-3
// pre-tokenizer, as HF tokenizers' BpeTrainer does: count the pre-tokenized
// words, then repeatedly merge the most frequent adjacent pair (ties go to
// the pair whose merged string sorts first). It checks ctx between texts and
// every few hundred merges.
func TrainBPE(ctx context.Context, texts iter.Seq[string], opts BPETrainOptions) (*TrainedTokenizer, error) {
	specials := append(append([]string(nil), trainedSpecials...), opts.SpecialTokens...)
	seen := map[string]bool{}
	for _, s := range specials {
		if s == "" || seen[s] {
			return nil, fmt.Errorf("tokenize: train BPE: special token %q is empty or repeated", s)
		}
		seen[s] = true
	}
	merges := opts.VocabSize - 256 - len(specials)
	if merges < 0 {
		return nil, fmt.Errorf("tokenize: train BPE: vocabulary size %d is less than 256 byte tokens plus %d special tokens", opts.VocabSize, len(specials))
	}
	minFreq := opts.MinFrequency
	if minFreq == 0 {
		minFreq = 2
	}

	counts := map[string]int{}
	for text := range texts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for piece := range llama3Pieces(text) {
			counts[piece]++
		}
	}
	t := newBPETrainer(counts)
	if err := t.run(ctx, merges, minFreq); err != nil {
		return nil, err
	}
	tt := &TrainedTokenizer{Vocab: t.tokens, Merges: make([][2]string, len(t.merges)), Special: len(specials)}
	for i, m := range t.merges {
		tt.Merges[i] = [2]string{t.tokens[m[0]], t.tokens[m[1]]}
	}
	tt.Vocab = append(tt.Vocab, specials...)
	return tt, nil
}

// byteAlphabet maps each byte to the printable rune GPT-2's bytes_to_unicode
// gives it, and byteOrder lists the bytes in that function's order, the
// order of the first 256 ids in GPT-2 and Llama-3 vocabularies.
var byteAlphabet, byteOrder = func() ([256]rune, [256]byte) {
	var alpha [256]rune
	var order [256]byte
	n, k := 0, 0
	printable := func(b int) bool { return b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF }
	for b := range 256 {
		if printable(b) {
			alpha[b] = rune(b)
			order[k] = byte(b)
			k++
		}
	}
	for b := range 256 {
		if !printable(b) {
			alpha[b] = rune(256 + n)
			order[k] = byte(b)
			n++
			k++
		}
	}
	return alpha, order
}()

// llama3Pieces splits text as the Llama-3 pattern does (llama3Pattern).
// Go's regexp lacks the look-ahead of \s+(?!\S), so the alternatives are
// matched by hand, in the pattern's order.
func llama3Pieces(text string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := 0; i < len(text); {
			j := llama3Match(text, i)
			if !yield(text[i:j]) {
				return
			}
			i = j
		}
	}
}

func llama3Match(s string, i int) int {
	r, w := utf8.DecodeRuneInString(s[i:])
	if r == '\'' {
		rest := strings.ToLower(s[i+1 : min(len(s), i+3)])
		for _, c := range []string{"s", "t", "re", "ve", "m", "ll", "d"} {
			if strings.HasPrefix(rest, c) {
				return i + 1 + len(c)
			}
		}
	}
	letter, number, space := unicode.IsLetter, unicode.IsNumber, unicode.IsSpace
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if letter(r) {
		return runOf(s, i, letter)
	}
	if r != '\r' && r != '\n' && !number(r) && i+w < len(s) {
		if r2, _ := utf8.DecodeRuneInString(s[i+w:]); letter(r2) {
			return runOf(s, i+w, letter)
		}
	}
	// \p{N}{1,3}
	if number(r) {
		j := i
		for n := 0; n < 3 && j < len(s); n++ {
			r, w := utf8.DecodeRuneInString(s[j:])
			if !number(r) {
				break
			}
			j += w
		}
		return j
	}
	//  ?[^\s\p{L}\p{N}]+[\r\n]*
	other := func(r rune) bool { return !space(r) && !letter(r) && !number(r) }
	j := i
	if r == ' ' {
		j++
	}
	if j < len(s) {
		if r2, _ := utf8.DecodeRuneInString(s[j:]); other(r2) {
			j = runOf(s, j, other)
			return runOf(s, j, func(r rune) bool { return r == '\r' || r == '\n' })
		}
	}
	if !space(r) {
		return i + w
	}
	end := runOf(s, i, space)
	// \s*[\r\n]+ ends after the run's last line break.
	if k := strings.LastIndexAny(s[i:end], "\r\n"); k >= 0 {
		return i + k + 1
	}
	// \s+(?!\S) leaves the run's last character to the word after it.
	if end < len(s) {
		_, lw := utf8.DecodeLastRuneInString(s[i:end])
		if end-lw > i {
			return end - lw
		}
	}
	return end
}

func runOf(s string, i int, in func(rune) bool) int {
	for i < len(s) {
		r, w := utf8.DecodeRuneInString(s[i:])
		if !in(r) {
			break
		}
		i += w
	}
	return i
}

// bpeTrainer holds the words as symbol sequences, the count of every
// adjacent pair, and for each pair the words it occurs in. A pair is keyed
// by its two symbols packed in one integer, which Go's maps hash fastest.
type bpeTrainer struct {
	tokens []string
	words  [][]int32
	freq   []int
	pairs  map[uint64]int
	// where may list a word more than once, or a word that no longer
	// holds the pair: merging such a word changes nothing.
	where   map[uint64][]int32
	queue   pairQueue
	merges  [][2]int32
	changed map[uint64]struct{}
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func pairOf(k uint64) (int32, int32) { return int32(k >> 32), int32(uint32(k)) }

func newBPETrainer(counts map[string]int) *bpeTrainer {
	t := &bpeTrainer{pairs: map[uint64]int{}, where: map[uint64][]int32{}, changed: map[uint64]struct{}{}}
	var byteID [256]int32
	for id, b := range byteOrder {
		byteID[b] = int32(id)
		t.tokens = append(t.tokens, string(byteAlphabet[b]))
	}
	// Words in sorted order so that ids and ties do not depend on map order.
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		syms := make([]int32, len(k))
		for i := range len(k) {
			syms[i] = byteID[k[i]]
		}
		w := int32(len(t.words))
		t.words = append(t.words, syms)
		t.freq = append(t.freq, counts[k])
		for i := 0; i+1 < len(syms); i++ {
			p := pairKey(syms[i], syms[i+1])
			t.pairs[p] += counts[k]
			t.where[p] = append(t.where[p], w)
		}
	}
	for p, c := range t.pairs {
		t.queue = append(t.queue, t.entry(p, c))
	}
	heap.Init(&t.queue)
	return t
}

func (t *bpeTrainer) entry(p uint64, c int) pairEntry {
	a, b := pairOf(p)
	return pairEntry{pair: p, count: c, text: t.tokens[a] + t.tokens[b]}
}

func (t *bpeTrainer) run(ctx context.Context, merges, minFreq int) error {
	for len(t.merges) < merges && t.queue.Len() > 0 {
		if len(t.merges)%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		e := heap.Pop(&t.queue).(pairEntry)
		if c := t.pairs[e.pair]; c != e.count {
			// A stale entry: the count changed after it was queued and a
			// fresher entry is in the queue (or the pair is gone).
			continue
		}
		if e.count < minFreq {
			break
		}
		t.merge(e.pair)
	}
	return nil
}

// merge adds the token of pair p and rewrites every word holding it,
// updating the pair counts by the difference each word makes.
func (t *bpeTrainer) merge(p uint64) {
	a, b := pairOf(p)
	id := int32(len(t.tokens))
	t.tokens = append(t.tokens, t.tokens[a]+t.tokens[b])
	t.merges = append(t.merges, [2]int32{a, b})
	clear(t.changed)
	ws := t.where[p]
	delete(t.where, p)
	var out []int32
	for _, w := range ws {
		old := t.words[w]
		out = out[:0]
		for i := 0; i < len(old); i++ {
			if i+1 < len(old) && old[i] == a && old[i+1] == b {
				out = append(out, id)
				i++
				continue
			}
			out = append(out, old[i])
		}
		if len(out) == len(old) {
			continue
		}
		f := t.freq[w]
		for i := 0; i+1 < len(old); i++ {
			q := pairKey(old[i], old[i+1])
			t.pairs[q] -= f
			t.changed[q] = struct{}{}
		}
		for i := 0; i+1 < len(out); i++ {
			q := pairKey(out[i], out[i+1])
			t.pairs[q] += f
			t.changed[q] = struct{}{}
			if out[i] == id || out[i+1] == id {
				t.where[q] = append(t.where[q], w)
			}
		}
		t.words[w] = append(old[:0], out...)
	}
	for q := range t.changed {
		if c := t.pairs[q]; c > 0 {
			heap.Push(&t.queue, t.entry(q, c))
		} else {
			delete(t.pairs, q)
		}
	}
	delete(t.pairs, p)
}

type pairEntry struct {
	pair  uint64
	count int
	text  string
}

// pairQueue is a max-heap by count, then by merged text, then by ids.
type pairQueue []pairEntry

func (q pairQueue) Len() int { return len(q) }
func (q pairQueue) Less(i, j int) bool {
	a, b := &q[i], &q[j]
	if a.count != b.count {
		return a.count > b.count
	}
	if a.text != b.text {
		return a.text < b.text
	}
	return a.pair < b.pair
}
func (q pairQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pairQueue) Push(x any)   { *q = append(*q, x.(pairEntry)) }
func (q *pairQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// TokenizerJSON returns the tokenizer.json of t: Llama-3's layout (Split on
// the Llama-3 pattern then ByteLevel, a BOS-adding TemplateProcessing
// post-processor, the ByteLevel decoder) with t's vocabulary and merges.
func (t *TrainedTokenizer) TokenizerJSON() ([]byte, error) {
	first := len(t.Vocab) - t.Special
	added := []map[string]any{}
	for id := first; id < len(t.Vocab); id++ {
		added = append(added, map[string]any{
			"id": id, "content": t.Vocab[id], "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true,
		})
	}
	bos := first // TrainedBOS is the first special token
	doc := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": added,
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{
			"type": "Sequence",
			"pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": llama3Pattern}, "behavior": "Isolated", "invert": false},
				map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
			},
		},
		"post_processor": map[string]any{
			"type": "TemplateProcessing",
			"single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": TrainedBOS, "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
			},
			"pair": []any{
				map[string]any{"SpecialToken": map[string]any{"id": TrainedBOS, "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": TrainedBOS, "type_id": 1}},
				map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}},
			},
			"special_tokens": map[string]any{
				TrainedBOS: map[string]any{"id": TrainedBOS, "ids": []int{bos}, "tokens": []string{TrainedBOS}},
			},
		},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model":   json.RawMessage(t.modelJSON()),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// modelJSON writes the BPE model by hand so the vocabulary stays in id
// order, as HF writes it, instead of a Go map's sorted keys.
func (t *TrainedTokenizer) modelJSON() []byte {
	var b bytes.Buffer
	b.WriteString(`{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":{`)
	for id, tok := range t.Vocab[:len(t.Vocab)-t.Special] {
		if id > 0 {
			b.WriteByte(',')
		}
		b.Write(jsonString(tok))
		fmt.Fprintf(&b, ":%d", id)
	}
	b.WriteString(`},"merges":[`)
	for i, m := range t.Merges {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(jsonString(m[0] + " " + m[1]))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func jsonString(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// ConfigJSON returns the tokenizer_config.json of t: the special tokens
// (EOS is the end of turn, <|eot_id|>, as in Llama 3 Instruct, so
// generation stops after an answer), the Llama-3 chat template and
// added_tokens_decoder.
func (t *TrainedTokenizer) ConfigJSON() ([]byte, error) {
	first := len(t.Vocab) - t.Special
	decoder := map[string]any{}
	for id := first; id < len(t.Vocab); id++ {
		decoder[fmt.Sprint(id)] = map[string]any{
			"content": t.Vocab[id], "lstrip": false, "normalized": false, "rstrip": false,
			"single_word": false, "special": true,
		}
	}
	tmpl, _ := BuiltinTemplate("llama3")
	cfg := map[string]any{
		"added_tokens_decoder":         decoder,
		"bos_token":                    TrainedBOS,
		"eos_token":                    TrainedEOT,
		"pad_token":                    TrainedPad,
		"chat_template":                tmpl,
		"clean_up_tokenization_spaces": false,
		"model_input_names":            []string{"input_ids", "attention_mask"},
		"model_max_length":             131072,
		"tokenizer_class":              "PreTrainedTokenizerFast",
	}
	if t.Special > len(trainedSpecials) {
		cfg["additional_special_tokens"] = t.Vocab[first+len(trainedSpecials):]
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteDir writes tokenizer.json and tokenizer_config.json into dir,
// creating it, so that Load and Hugging Face's AutoTokenizer read it.
func (t *TrainedTokenizer) WriteDir(dir string) error {
	tj, err := t.TokenizerJSON()
	if err != nil {
		return err
	}
	cj, err := t.ConfigJSON()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cj, 0o644)
}

// Tokenizer returns t ready to use, as Load would read it from WriteDir's
// files.
func (t *TrainedTokenizer) Tokenizer() (*Tokenizer, error) {
	tj, err := t.TokenizerJSON()
	if err != nil {
		return nil, err
	}
	cj, err := t.ConfigJSON()
	if err != nil {
		return nil, err
	}
	tok, err := FromJSON(tj, cj)
	if err != nil {
		return nil, errors.Join(errors.New("tokenize: trained tokenizer does not load"), err)
	}
	return tok, nil
}
