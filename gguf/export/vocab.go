package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/pltune/pltune/gguf"
	"github.com/pltune/pltune/tokenize"
)

// GGUF token types (llama.cpp's llama_token_type).
const (
	tokNormal      int32 = 1
	tokUnknown     int32 = 2
	tokControl     int32 = 3
	tokUserDefined int32 = 4
	tokUnused      int32 = 5
	tokByte        int32 = 6
)

// The Split regexes of the byte-level BPE pre-tokenizers pltune supports,
// with the tokenizer.ggml.pre name llama.cpp gives each.
var bpePre = []struct{ pattern, name string }{
	// Llama-3 (also Llama-3.1/3.2/3.3): digits in groups of up to three.
	{`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`, "llama-bpe"},
	// Qwen2/2.5/3: single digits.
	{`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`, "qwen2"},
}

// vocab is the tokenizer as GGUF metadata.
type vocab struct {
	family string
	kv     []gguf.KV
}

type tokenizerJSON struct {
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Model         struct {
		Type         string            `json:"type"`
		Vocab        map[string]int    `json:"vocab"`
		Merges       []json.RawMessage `json:"merges"`
		ByteFallback bool              `json:"byte_fallback"`
		UnkToken     *string           `json:"unk_token"`
	} `json:"model"`
}

// loadVocab reads modelDir's tokenizer (tokenizer.json and
// tokenizer_config.json) as llama.cpp's converter would write it.
//
// Byte-level BPE (Llama-3, Qwen) becomes tokenizer.ggml.model "gpt2" with
// the merges and the pre-tokenizer's name. A byte-fallback BPE
// tokenizer.json (Llama-2, Mistral, Gemma: SentencePiece models converted
// by transformers) becomes model "llama" with scores and byte tokens. Where
// llama.cpp's converter has the original tokenizer.model it copies
// SentencePiece's scores; from tokenizer.json alone it writes -1000 for
// every token, which makes llama.cpp's score-driven SentencePiece merging
// pick merges by position and tokenize differently from the checkpoint.
// pltune writes instead what SentencePiece's BPE scores are: the merge
// order, score = -rank of the first merge producing the token, so llama.cpp
// merges in the order Hugging Face's BPE does.
func loadVocab(modelDir string, vocabSize int) (*vocab, error) {
	path := filepath.Join(modelDir, "tokenizer.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("export: %s: %w (GGUF embeds the tokenizer; save the model with its tokenizer files)", modelDir, errNoTokenizer)
	}
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	var tj tokenizerJSON
	if err := json.Unmarshal(data, &tj); err != nil {
		return nil, fmt.Errorf("export: %s: %v", path, err)
	}
	tok, err := tokenize.Load(modelDir)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("export: %s: model type %q; only BPE tokenizers are exported", path, tj.Model.Type)
	}
	n := vocabSize
	maxID := -1
	for _, id := range tj.Model.Vocab {
		maxID = max(maxID, id)
	}
	for _, a := range tj.AddedTokens {
		maxID = max(maxID, a.ID)
	}
	if maxID >= n {
		return nil, fmt.Errorf("export: %s has token id %d, beyond config.json's vocab_size %d", path, maxID, n)
	}
	tokens := make([]string, n)
	types := make([]int32, n)
	have := make([]bool, n)
	for s, id := range tj.Model.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("export: %s: token %q has negative id %d", path, s, id)
		}
		tokens[id], types[id], have[id] = s, tokNormal, true
	}
	special := map[int]bool{}
	added := map[int]bool{}
	for _, a := range tj.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("export: %s: added token %q has negative id %d", path, a.Content, a.ID)
		}
		tokens[a.ID], have[a.ID] = a.Content, true
		added[a.ID] = true
		if a.Special || looksSpecial(a.Content) {
			types[a.ID] = tokControl
			special[a.ID] = true
		} else {
			// llama.cpp matches user-defined tokens in the raw text, so
			// their spaces are written as spaces (its converter does this
			// for Gemma).
			tokens[a.ID] = strings.ReplaceAll(a.Content, "▁", " ")
			types[a.ID] = tokUserDefined
		}
	}
	for i := range tokens {
		if !have[i] {
			tokens[i], types[i] = fmt.Sprintf("[PAD%d]", i), tokUnused
		}
	}
	merges, err := parseMerges(tj.Model.Merges)
	if err != nil {
		return nil, fmt.Errorf("export: %s: %v", path, err)
	}

	cfg := tok.Config()
	// tokenizer_config.json's add_prefix_space, which llama.cpp's converter
	// copies to tokenizer.ggml.add_space_prefix.
	cfgPrefix, hasCfgPrefix := cfg.Raw["add_prefix_space"].(bool)
	v := &vocab{}
	var kv []gguf.KV
	if tj.Model.ByteFallback {
		// SentencePiece-style (Llama-2, Mistral, Gemma).
		prefix, err := spaceInfo(tj.Normalizer, tj.PreTokenizer)
		if err != nil {
			return nil, fmt.Errorf("export: %s: %v", path, err)
		}
		if hasCfgPrefix {
			prefix = cfgPrefix
		}
		v.family = "llama-spm"
		if !prefix {
			v.family = "gemma-spm"
		}
		byteRe := regexp.MustCompile(`^<0x[0-9A-Fa-f]{2}>$`)
		for i, t := range tokens {
			if types[i] == tokNormal && byteRe.MatchString(t) {
				types[i] = tokByte
			}
		}
		if u := tj.Model.UnkToken; u != nil {
			if id, ok := tj.Model.Vocab[*u]; ok {
				types[id] = tokUnknown
			}
		}
		scores := make([]float32, n)
		ids := make(map[string]int, len(tj.Model.Vocab))
		for s, id := range tj.Model.Vocab {
			ids[s] = id
			scores[id] = -float32(len(merges) + 1) // never produced by a merge: merged last
		}
		seen := make([]bool, n)
		for r, m := range merges {
			if id, ok := ids[m[0]+m[1]]; ok && !seen[id] {
				seen[id] = true
				scores[id] = -float32(r)
			}
		}
		for i := range scores {
			if types[i] != tokNormal {
				scores[i] = 0
			}
		}
		kv = append(kv,
			gguf.KV{Key: "tokenizer.ggml.model", Value: "llama"},
			gguf.KV{Key: "tokenizer.ggml.pre", Value: "default"},
			gguf.KV{Key: "tokenizer.ggml.tokens", Value: tokens},
			gguf.KV{Key: "tokenizer.ggml.scores", Value: scores},
			gguf.KV{Key: "tokenizer.ggml.token_type", Value: types},
			gguf.KV{Key: "tokenizer.ggml.add_space_prefix", Value: prefix},
		)
	} else {
		pre, err := bpePreName(tj.PreTokenizer)
		if err != nil {
			return nil, fmt.Errorf("export: %s: %v", path, err)
		}
		v.family = pre
		ms := make([]string, len(merges))
		for i, m := range merges {
			if strings.Contains(m[0], " ") || strings.Contains(m[1], " ") {
				return nil, fmt.Errorf("export: %s: merge %d (%q, %q) has a space, which GGUF's merge list cannot hold", path, i, m[0], m[1])
			}
			ms[i] = m[0] + " " + m[1]
		}
		kv = append(kv,
			gguf.KV{Key: "tokenizer.ggml.model", Value: "gpt2"},
			gguf.KV{Key: "tokenizer.ggml.pre", Value: pre},
			gguf.KV{Key: "tokenizer.ggml.tokens", Value: tokens},
			gguf.KV{Key: "tokenizer.ggml.token_type", Value: types},
			gguf.KV{Key: "tokenizer.ggml.merges", Value: ms},
		)
		if hasCfgPrefix {
			kv = append(kv, gguf.KV{Key: "tokenizer.ggml.add_space_prefix", Value: cfgPrefix})
		}
	}

	idOf := func(s string) (uint32, bool) {
		if s == "" {
			return 0, false
		}
		id, ok := tok.TokenToID(s)
		return uint32(id), ok
	}
	for _, sp := range []struct{ key, tok string }{
		{"tokenizer.ggml.bos_token_id", cfg.BOSToken},
		{"tokenizer.ggml.eos_token_id", cfg.EOSToken},
		{"tokenizer.ggml.unknown_token_id", cfg.UnkToken},
		{"tokenizer.ggml.padding_token_id", cfg.PadToken},
	} {
		if id, ok := idOf(sp.tok); ok {
			kv = append(kv, gguf.KV{Key: sp.key, Value: id})
		}
	}
	// The end-of-turn token (llama.cpp finds these by name too; writing it
	// makes the file say so). EOS is an end of generation already.
	if stops := tok.StopIDs(); len(stops) > 0 {
		if eos, ok := idOf(cfg.EOSToken); !ok || uint32(stops[0]) != eos {
			kv = append(kv, gguf.KV{Key: "tokenizer.ggml.eot_token_id", Value: uint32(stops[0])})
		}
	}
	// add_bos/add_eos as the tokenizer behaves (its config flags or its
	// post-processor's template).
	probe := "a"
	plain, full := tok.Encode(probe, false), tok.Encode(probe, true)
	addBOS, addEOS := false, false
	if len(full) > len(plain) {
		if bos, ok := idOf(cfg.BOSToken); ok && uint32(full[0]) == bos {
			addBOS = true
		}
		if eos, ok := idOf(cfg.EOSToken); ok && uint32(full[len(full)-1]) == eos {
			addEOS = true
		}
	}
	kv = append(kv,
		gguf.KV{Key: "tokenizer.ggml.add_bos_token", Value: addBOS},
		gguf.KV{Key: "tokenizer.ggml.add_eos_token", Value: addEOS})
	if sep, ok := pairSeparator(tj.PostProcessor, cfg.EOSToken); ok {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.add_sep_token", Value: sep})
	}
	if cfg.ChatTemplate != "" {
		kv = append(kv, gguf.KV{Key: "tokenizer.chat_template", Value: cfg.ChatTemplate})
	}
	names := make([]string, 0, len(cfg.ChatTemplates))
	for name := range cfg.ChatTemplates {
		if name != "default" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		kv = append(kv, gguf.KV{Key: "tokenizer.chat_template." + name, Value: cfg.ChatTemplates[name]})
	}
	v.kv = kv
	return v, nil
}

// looksSpecial is llama.cpp's converter's does_token_look_special.
func looksSpecial(s string) bool {
	switch s {
	case "<pad>", "<mask>", "<2mass>", "[@BOS@]":
		return true
	}
	return (strings.HasPrefix(s, "<|") && strings.HasSuffix(s, "|>")) ||
		(strings.HasPrefix(s, "<｜") && strings.HasSuffix(s, "｜>")) ||
		(strings.HasPrefix(s, "<unused") && strings.HasSuffix(s, ">"))
}

// parseMerges reads tokenizer.json merges, either "a b" strings or
// ["a", "b"] pairs.
func parseMerges(raw []json.RawMessage) ([][2]string, error) {
	out := make([][2]string, len(raw))
	for i, r := range raw {
		var s string
		if err := json.Unmarshal(r, &s); err == nil {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("merge %d %q is not two tokens separated by a space", i, s)
			}
			out[i] = [2]string{a, b}
			continue
		}
		var p []string
		if err := json.Unmarshal(r, &p); err != nil || len(p) != 2 {
			return nil, fmt.Errorf("merge %d %s: want \"a b\" or [\"a\", \"b\"]", i, r)
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

// bpePreName names a byte-level pre-tokenizer for llama.cpp.
func bpePreName(pre json.RawMessage) (string, error) {
	var p struct {
		Type          string `json:"type"`
		Pretokenizers []struct {
			Type    string `json:"type"`
			Pattern struct {
				Regex string `json:"Regex"`
			} `json:"pattern"`
		} `json:"pretokenizers"`
	}
	if err := json.Unmarshal(pre, &p); err != nil {
		return "", fmt.Errorf("pre_tokenizer: %v", err)
	}
	byteLevel := false
	regex := ""
	for _, s := range p.Pretokenizers {
		switch s.Type {
		case "ByteLevel":
			byteLevel = true
		case "Split":
			regex = s.Pattern.Regex
		}
	}
	if p.Type == "Sequence" && byteLevel {
		for _, b := range bpePre {
			if regex == b.pattern {
				return b.name, nil
			}
		}
	}
	return "", fmt.Errorf("pre_tokenizer %.200s is not one llama.cpp is told apart here; pltune exports byte-level BPE with the Llama-3 (llama-bpe) or Qwen (qwen2) split, and byte-fallback (SentencePiece-style) BPE", pre)
}

// spaceInfo tells whether a byte-fallback tokenizer prefixes the text with
// "▁" (Llama-2, Mistral: add_space_prefix) or not (Gemma), and checks it
// only turns spaces into "▁" otherwise, which is what llama.cpp's
// SentencePiece tokenizer does.
func spaceInfo(norm, pre json.RawMessage) (prefix bool, err error) {
	type step struct {
		Type    string `json:"type"`
		Prepend string `json:"prepend"`
		Pattern struct {
			String string `json:"String"`
		} `json:"pattern"`
		Content        string `json:"content"`
		Replacement    string `json:"replacement"`
		PrependScheme  string `json:"prepend_scheme"`
		AddPrefixSpace *bool  `json:"add_prefix_space"`
		Behavior       string `json:"behavior"`
	}
	flatten := func(raw json.RawMessage, list string) ([]step, error) {
		if len(raw) == 0 || string(raw) == "null" {
			return nil, nil
		}
		var s struct {
			step
			Normalizers   []step `json:"normalizers"`
			Pretokenizers []step `json:"pretokenizers"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		if s.Type == "Sequence" {
			return append(s.Normalizers, s.Pretokenizers...), nil
		}
		return []step{s.step}, nil
	}
	ns, err := flatten(norm, "normalizers")
	if err != nil {
		return false, fmt.Errorf("normalizer: %v", err)
	}
	ps, err := flatten(pre, "pretokenizers")
	if err != nil {
		return false, fmt.Errorf("pre_tokenizer: %v", err)
	}
	spaces := false
	for _, s := range ns {
		switch {
		case s.Type == "Prepend" && s.Prepend == "▁":
			prefix = true
		case s.Type == "Replace" && s.Pattern.String == " " && s.Content == "▁":
			spaces = true
		default:
			return false, fmt.Errorf("normalizer step %q is not one llama.cpp's SentencePiece tokenizer performs", s.Type)
		}
	}
	for _, s := range ps {
		switch {
		case s.Type == "Metaspace" && s.Replacement == "▁":
			spaces = true
			if s.PrependScheme == "always" || s.PrependScheme == "first" || (s.PrependScheme == "" && (s.AddPrefixSpace == nil || *s.AddPrefixSpace)) {
				prefix = true
			}
		case s.Type == "Split" && s.Pattern.String == " " && s.Behavior == "MergedWithPrevious" && spaces:
			// Gemma: splits at spaces the normalizer has already replaced.
		default:
			return false, fmt.Errorf("pre-tokenizer step %q is not one llama.cpp's SentencePiece tokenizer performs", s.Type)
		}
	}
	if !spaces {
		return false, fmt.Errorf("a byte-fallback tokenizer that does not turn spaces into \"▁\" is not SentencePiece-style")
	}
	return prefix, nil
}

// pairSeparator reads add_sep_token from a TemplateProcessing
// post-processor's pair template as gguf-py's SpecialVocab does: between
// the sequences A and B, is there an EOS separator? ok is false when the
// template says nothing about it.
func pairSeparator(post json.RawMessage, eos string) (sep, ok bool) {
	type piece struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	}
	type proc struct {
		Type   string  `json:"type"`
		Single []piece `json:"single"`
		Pair   []piece `json:"pair"`
	}
	var p struct {
		proc
		Processors []proc `json:"processors"`
	}
	if len(post) == 0 || json.Unmarshal(post, &p) != nil {
		return false, false
	}
	procs := p.Processors
	if len(procs) == 0 {
		procs = []proc{p.proc}
	}
	for _, pr := range procs {
		if pr.Type != "TemplateProcessing" || len(pr.Pair) == 0 {
			continue
		}
		special := func(x piece) string {
			if x.SpecialToken != nil {
				return x.SpecialToken.ID
			}
			return ""
		}
		pair := pr.Pair
		var first, last string
		if len(pr.Single) > 1 {
			first, last = special(pr.Single[0]), special(pr.Single[len(pr.Single)-1])
		}
		if first != "" && special(pair[0]) == first {
			pair = pair[1:]
		}
		if last != "" && len(pair) > 0 && special(pair[len(pair)-1]) == last {
			pair = pair[:len(pair)-1]
		}
		if len(pair) < 3 || pair[0].Sequence == nil || pair[0].Sequence.ID != "A" || pair[len(pair)-1].Sequence == nil || pair[len(pair)-1].Sequence.ID != "B" {
			continue
		}
		mid := pair[1 : len(pair)-1]
		sep := special(mid[0]) == eos && last == ""
		if len(mid) == 2 && special(mid[1]) == eos {
			sep = true
		}
		return sep, true
	}
	return false, false
}
