package tokenize

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// Tokenizer encodes text to token ids and decodes them back exactly as the
// Hugging Face tokenizers library does for the same tokenizer.json: added
// tokens, normalizer, pre-tokenizer, BPE model (byte-level or with byte
// fallback), post-processor and decoder. The "truncation" and "padding"
// settings a tokenizer.json may carry are not applied, as transformers does
// not apply them when it calls the tokenizer: sequences are cut and padded by
// the training code. Only BPE models are supported; Unigram and WordPiece
// files fail to load with an error naming the model type. A Tokenizer is safe
// for concurrent use.
type Tokenizer struct {
	cfg Config

	model      *bpe
	normalizer normalizer
	pre        preTokenizer
	post       processor
	dec        decoder

	added          []AddedToken
	addedByID      map[int]AddedToken
	addedByContent map[string]int
	special        map[string]bool // contents of the special added tokens
	rawAdded       *addedMatcher   // tokens matched on the input text
	normAdded      *addedMatcher   // tokens matched on the normalized text
	vocabSize      int
	// needRaw: the post-processor trims offsets and needs each token's text.
	needRaw bool

	states sync.Pool // *encodeState
}

// Encoding is the result of EncodeWithOffsets: the ids and, for each id, the
// byte range [start, end) of the input text it came from. Tokens inserted by
// the post-processor (BOS, EOS) have the empty range [0, 0). A token that
// covers part of a character (byte-level BPE, byte fallback) has the range
// of the whole character, so text[start:end] is always valid to slice.
type Encoding struct {
	IDs     []int
	Offsets [][2]int
}

// Config is the parsed tokenizer_config.json, completed by
// special_tokens_map.json where the config leaves a token unset.
type Config struct {
	// BOSToken, EOSToken, PadToken and UnkToken are the token strings, ""
	// when absent. The config may give them as strings or as
	// {"content": ...} objects.
	BOSToken, EOSToken, PadToken, UnkToken string
	// AddBOSToken and AddEOSToken are nil when the config does not set them.
	AddBOSToken, AddEOSToken *bool
	// ChatTemplate is the default chat template: the string form, or the
	// entry named "default" of the list form. A chat_template.jinja file in
	// the tokenizer directory fills it when the config has none.
	ChatTemplate string
	// ChatTemplates holds the named templates of the list form.
	ChatTemplates map[string]string
	// ModelMaxLength is model_max_length, 0 when absent or a placeholder
	// too large for an int32 (HF writes 1e30 for "no limit").
	ModelMaxLength int
	// Raw is the whole tokenizer_config.json, for template variables.
	Raw map[string]any
}

// Load reads a tokenizer from path: a Hugging Face directory holding
// tokenizer.json (and optionally tokenizer_config.json,
// special_tokens_map.json and chat_template.jinja), or a bare tokenizer.json
// file, which is loaded alone.
func Load(path string) (*Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	if !st.IsDir() {
		tj, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("tokenize: %w", err)
		}
		t, err := FromJSON(tj, nil)
		if err != nil {
			return nil, fmt.Errorf("tokenize: %s: %w", path, errors.Unwrap(err))
		}
		return t, nil
	}
	tj, err := os.ReadFile(filepath.Join(path, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("tokenize: %s has no tokenizer.json (only tokenizer.json files are supported, not sentencepiece .model files): %w", path, err)
	}
	optional := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(path, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("tokenize: %w", err)
		}
		return b, nil
	}
	cj, err := optional("tokenizer_config.json")
	if err != nil {
		return nil, err
	}
	sm, err := optional("special_tokens_map.json")
	if err != nil {
		return nil, err
	}
	tmpl, err := optional("chat_template.jinja")
	if err != nil {
		return nil, err
	}
	t, err := fromJSON(tj, cj, sm)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %s: %w", path, err)
	}
	if t.cfg.ChatTemplate == "" && tmpl != nil {
		t.cfg.ChatTemplate = string(tmpl)
	}
	return t, nil
}

// FromJSON builds a tokenizer from the bytes of tokenizer.json and, when not
// nil, tokenizer_config.json.
func FromJSON(tokenizerJSON, configJSON []byte) (*Tokenizer, error) {
	t, err := fromJSON(tokenizerJSON, configJSON, nil)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	return t, nil
}

func fromJSON(tokenizerJSON, configJSON, specialMap []byte) (*Tokenizer, error) {
	var f struct {
		AddedTokens                                             []AddedToken
		Normalizer, PreTokenizer, PostProcessor, Decoder, Model json.RawMessage
	}
	top, err := topLevel(tokenizerJSON)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if raw := top["added_tokens"]; raw != nil && string(raw) != "null" {
		if err := json.Unmarshal(raw, &f.AddedTokens); err != nil {
			return nil, fmt.Errorf("tokenizer.json: added_tokens: %w", err)
		}
	}
	f.Normalizer, f.PreTokenizer = top["normalizer"], top["pre_tokenizer"]
	f.PostProcessor, f.Decoder, f.Model = top["post_processor"], top["decoder"], top["model"]
	if len(f.Model) == 0 || string(f.Model) == "null" {
		return nil, fmt.Errorf("tokenizer.json: no model")
	}
	t := &Tokenizer{}
	if t.cfg, err = parseConfig(configJSON, specialMap); err != nil {
		return nil, err
	}
	if t.normalizer, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if t.pre, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	byteLevel := t.pre != nil && hasByteLevel(t.pre)
	t.pre = simplifyPre(t.pre)
	if t.post, err = parseProcessor(f.PostProcessor); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	t.needRaw = needsRaw(t.post)
	if t.dec, err = parseDecoder(f.Decoder); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if t.model, err = parseBPE(f.Model, byteLevel); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}

	t.vocabSize = len(t.model.vocabR)
	t.addedByID = make(map[int]AddedToken, len(f.AddedTokens))
	t.addedByContent = make(map[string]int, len(f.AddedTokens))
	t.special = map[string]bool{}
	var ordered []AddedToken // special tokens first, as HF builds its matchers
	for _, pass := range []bool{true, false} {
		for i, a := range f.AddedTokens {
			if a.Special != pass {
				continue
			}
			if a.ID < 0 || a.ID >= maxVocabID {
				return nil, fmt.Errorf("tokenizer.json: added token %d (%q) has id %d", i, a.Content, a.ID)
			}
			if a.Content == "" {
				continue
			}
			t.added = append(t.added, a)
			t.addedByID[a.ID] = a
			t.addedByContent[a.Content] = a.ID
			if a.Special {
				t.special[a.Content] = true
			}
			t.vocabSize = max(t.vocabSize, a.ID+1)
			ordered = append(ordered, a)
		}
	}
	var raw, norm []AddedToken
	for _, a := range ordered {
		if a.Normalized {
			norm = append(norm, a)
		} else {
			raw = append(raw, a)
		}
	}
	t.rawAdded = newAddedMatcher(raw, func(a AddedToken) string { return a.Content })
	t.normAdded = newAddedMatcher(norm, func(a AddedToken) string {
		if t.normalizer == nil {
			return a.Content
		}
		return t.normalizer.normalize(nstring{s: a.Content}).s
	})
	return t, nil
}

// simplifyPre drops steps that do nothing on raw bytes: a ByteLevel step
// without prefix space or regex only maps bytes to characters, which the
// byte-level model does not need.
func simplifyPre(p preTokenizer) preTokenizer {
	switch x := p.(type) {
	case byteLevelPre:
		if !x.addPrefixSpace && !x.useRegex {
			return nil
		}
	case seqPre:
		var q seqPre
		for _, s := range x {
			if s = simplifyPre(s); s != nil {
				q = append(q, s)
			}
		}
		switch len(q) {
		case 0:
			return nil
		case 1:
			return q[0]
		}
		return q
	}
	return p
}

func needsRaw(p processor) bool {
	switch x := p.(type) {
	case byteLevelProcessor:
		return x.trimOffsets
	case wrapProcessor:
		return x.trim != nil
	case seqProcessor:
		for _, s := range x {
			if needsRaw(s) {
				return true
			}
		}
	}
	return false
}

// encodeState holds the buffers of one encoding.
type encodeState struct {
	segs   []segment
	nsegs  []segment
	pieces []nstring
	lens   []int32
	bpe    bpeScratch
	// count is CountTokens' id buffer, kept between calls so that counting
	// allocates no id slice.
	count []int
}

func (t *Tokenizer) state() *encodeState {
	if s, ok := t.states.Get().(*encodeState); ok {
		return s
	}
	return &encodeState{}
}

// Encode returns the token ids of text. Added tokens (special or not) found
// in the text are always recognised; with addSpecialTokens the tokenizer's
// post-processor adds its special tokens (BOS, EOS) as HF does.
func (t *Tokenizer) Encode(text string, addSpecialTokens bool) []int {
	enc := t.encode(text, addSpecialTokens, false)
	return enc.ids
}

// EncodeWithOffsets is Encode with the byte offsets of each token.
func (t *Tokenizer) EncodeWithOffsets(text string, addSpecialTokens bool) Encoding {
	enc := t.encode(text, addSpecialTokens, true)
	return Encoding{IDs: enc.ids, Offsets: enc.offs}
}

// EncodeBatch encodes texts on all cores; result i belongs to texts[i].
func (t *Tokenizer) EncodeBatch(texts []string, addSpecialTokens bool) [][]int {
	out := make([][]int, len(texts))
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	if workers <= 1 {
		for i, s := range texts {
			out[i] = t.Encode(s, addSpecialTokens)
		}
		return out
	}
	// Texts are handed out in small chunks so that long and short texts
	// balance across workers.
	const chunk = 16
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				a := int(next.Add(chunk)) - chunk
				if a >= len(texts) {
					return
				}
				for i := a; i < min(a+chunk, len(texts)); i++ {
					out[i] = t.Encode(texts[i], addSpecialTokens)
				}
			}
		})
	}
	wg.Wait()
	return out
}

// CountTokens is len(t.Encode(text, false)), the length of text itself
// without the post-processor's special tokens, computed without keeping
// the ids: the encoding goes into a buffer reused across calls, so
// counting a corpus allocates no id slice per text. It is safe for
// concurrent use, and makes a *Tokenizer a corpus.TokenCounter.
func (t *Tokenizer) CountTokens(text string) int {
	st := t.state()
	defer t.states.Put(st)
	enc := encodingBuf{ids: st.count[:0]}
	t.encodeWith(st, text, false, false, &enc)
	st.count = enc.ids[:0]
	return len(enc.ids)
}

func (t *Tokenizer) encode(text string, addSpecial, track bool) encodingBuf {
	st := t.state()
	defer t.states.Put(st)
	enc := encodingBuf{ids: make([]int, 0, len(text)/3+4)}
	t.encodeWith(st, text, addSpecial, track, &enc)
	return enc
}

// encodeWith appends text's encoding to enc using st's scratch space.
func (t *Tokenizer) encodeWith(st *encodeState, text string, addSpecial, track bool, enc *encodingBuf) {
	if track {
		enc.offs = make([][2]int, 0, cap(enc.ids))
	}
	keepRaw := track && t.needRaw
	if keepRaw {
		enc.raw = []string{}
	}
	st.segs = t.rawAdded.split(text, st.segs[:0])
	for _, sg := range st.segs {
		if sg.id >= 0 {
			enc.ids = append(enc.ids, sg.id)
			if track {
				enc.offs = append(enc.offs, [2]int{sg.start, sg.end})
			}
			if keepRaw {
				enc.raw = append(enc.raw, text[sg.start:sg.end])
			}
			continue
		}
		n := newNString(text[sg.start:sg.end], sg.start, track)
		n.first = sg.start == 0
		if t.normalizer != nil {
			n = t.normalizer.normalize(n)
		}
		if n.s == "" {
			continue
		}
		if t.normAdded.empty() {
			t.encodeText(n, st, enc, track, keepRaw)
			continue
		}
		st.nsegs = t.normAdded.split(n.s, st.nsegs[:0])
		for _, ns := range st.nsegs {
			if ns.id < 0 {
				t.encodeText(n.sub(ns.start, ns.end), st, enc, track, keepRaw)
				continue
			}
			enc.ids = append(enc.ids, ns.id)
			if track {
				enc.offs = append(enc.offs, [2]int{int(n.align[ns.start].start), int(n.align[ns.end-1].end)})
			}
			if keepRaw {
				enc.raw = append(enc.raw, n.s[ns.start:ns.end])
			}
		}
	}
	if t.post != nil {
		t.post.process(enc, addSpecial)
	}
}

// encodeText pre-tokenizes a normalized stretch of text and runs the model
// on each piece.
func (t *Tokenizer) encodeText(n nstring, st *encodeState, enc *encodingBuf, track, keepRaw bool) {
	pieces := st.pieces[:0]
	if t.pre != nil {
		pieces = t.pre.split(n, pieces)
	} else {
		pieces = append(pieces, n)
	}
	for _, p := range pieces {
		if p.s == "" {
			continue
		}
		n0 := len(enc.ids)
		var lens []int32
		enc.ids, lens = t.model.tokenize(p.s, &st.bpe, enc.ids, st.lens[:0], track)
		if !track {
			continue
		}
		st.lens = lens
		at := 0
		for k := range enc.ids[n0:] {
			l := int(lens[k])
			enc.offs = append(enc.offs, [2]int{int(p.align[at].start), int(p.align[at+l-1].end)})
			if keepRaw {
				enc.raw = append(enc.raw, p.s[at:at+l])
			}
			at += l
		}
	}
	st.pieces = pieces[:0]
}

// Decode turns ids back into text through the tokenizer's decoder, as HF
// tokenizers' decode does. With skipSpecialTokens, special tokens are left
// out. Unknown ids are skipped. transformers' clean_up_tokenization_spaces
// (" ." to ".", and so on) is a transformers step and is not applied.
func (t *Tokenizer) Decode(ids []int, skipSpecialTokens bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		s, ok := t.IDToToken(id)
		if !ok || skipSpecialTokens && t.special[s] {
			continue
		}
		toks = append(toks, s)
	}
	if t.dec == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(t.dec.decodeChain(toks), "")
}

// TokenToID returns the id of the token string tok (added token or
// vocabulary entry, in the vocabulary's own spelling: "Ġ" for a byte-level
// space, "▁" for a SentencePiece one).
func (t *Tokenizer) TokenToID(tok string) (int, bool) {
	if id, ok := t.addedByContent[tok]; ok {
		return id, true
	}
	id, ok := t.model.vocab[tok]
	return id, ok
}

// IDToToken returns the token string of id.
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if a, ok := t.addedByID[id]; ok {
		return a.Content, true
	}
	if id < 0 || id >= len(t.model.vocabR) {
		return "", false
	}
	s := t.model.vocabR[id]
	if s == "" {
		if _, ok := t.model.vocab[""]; !ok {
			return "", false
		}
	}
	return s, true
}

// VocabSize is the number of ids: one more than the largest id of the
// vocabulary and the added tokens (the rows an embedding table needs).
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// IsSpecial reports whether id is a special token (an added token marked
// special): the tokens Decode skips on request.
func (t *Tokenizer) IsSpecial(id int) bool {
	s, ok := t.IDToToken(id)
	return ok && t.special[s]
}

// AddedTokens returns the added tokens of tokenizer.json, special ones
// first.
func (t *Tokenizer) AddedTokens() []AddedToken { return append([]AddedToken(nil), t.added...) }

// Config returns the parsed tokenizer_config.json.
func (t *Tokenizer) Config() Config { return t.cfg }
