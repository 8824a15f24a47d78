package tokenize

import (
	"errors"
)

// Tokenizer encodes text to token ids and decodes them back exactly as the
// Hugging Face tokenizers library does for the same tokenizer.json. It is
// safe for concurrent use.
type Tokenizer struct {
	cfg Config
}

// Encoding is the result of EncodeWithOffsets: the ids and, for each id, the
// byte range [start, end) of the input text it came from. Tokens inserted by
// the post-processor (BOS, EOS) have the empty range [0, 0).
type Encoding struct {
	IDs     []int
	Offsets [][2]int
}

// Config is the parsed tokenizer_config.json, completed by
// special_tokens_map.json where the config leaves a token unset.
type Config struct {
	// BOSToken, EOSToken, PadToken and UnkToken are the token strings, ""
	// when absent.
	BOSToken, EOSToken, PadToken, UnkToken string
	// AddBOSToken and AddEOSToken are nil when the config does not set them.
	AddBOSToken, AddEOSToken *bool
	// ChatTemplate is the default chat template: the string form, or the
	// entry named "default" of the list form.
	ChatTemplate string
	// ChatTemplates holds the named templates of the list form.
	ChatTemplates map[string]string
	// ModelMaxLength is model_max_length, 0 when absent or absurdly large.
	ModelMaxLength int
	// Raw is the whole tokenizer_config.json, for template variables.
	Raw map[string]any
}

var errNotImplemented = errors.New("tokenize: not implemented yet")

// Load reads a tokenizer from path: a Hugging Face directory holding
// tokenizer.json (and optionally tokenizer_config.json and
// special_tokens_map.json), or a bare tokenizer.json file.
func Load(path string) (*Tokenizer, error) { return nil, errNotImplemented }

// FromJSON builds a tokenizer from the bytes of tokenizer.json and, when not
// nil, tokenizer_config.json.
func FromJSON(tokenizerJSON, configJSON []byte) (*Tokenizer, error) {
	return nil, errNotImplemented
}

// Encode returns the token ids of text. With addSpecialTokens the
// tokenizer's post-processor adds its special tokens (BOS, EOS) as HF does.
func (t *Tokenizer) Encode(text string, addSpecialTokens bool) []int { return nil }

// EncodeWithOffsets is Encode with the byte offsets of each token.
func (t *Tokenizer) EncodeWithOffsets(text string, addSpecialTokens bool) Encoding {
	return Encoding{}
}

// EncodeBatch encodes texts on all cores; result i belongs to texts[i].
func (t *Tokenizer) EncodeBatch(texts []string, addSpecialTokens bool) [][]int { return nil }

// Decode turns ids back into text through the tokenizer's decoder. With
// skipSpecialTokens, special tokens are left out.
func (t *Tokenizer) Decode(ids []int, skipSpecialTokens bool) string { return "" }

// TokenToID returns the id of the token string tok (vocabulary or added
// token).
func (t *Tokenizer) TokenToID(tok string) (int, bool) { return 0, false }

// IDToToken returns the token string of id.
func (t *Tokenizer) IDToToken(id int) (string, bool) { return "", false }

// VocabSize is the number of ids, added tokens included.
func (t *Tokenizer) VocabSize() int { return 0 }

// IsSpecial reports whether id is an added token marked special.
func (t *Tokenizer) IsSpecial(id int) bool { return false }

// Config returns the parsed tokenizer_config.json.
func (t *Tokenizer) Config() Config { return t.cfg }
