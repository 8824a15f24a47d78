package tokstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
)

// Format and Version identify a store's manifest.
const (
	Format  = "pltune-tokstore"
	Version = 1
)

// Type is what a store holds.
type Type string

const (
	// TypeText is raw documents for continual pre-training.
	TypeText Type = "text"
	// TypeChat is supervised sequences with a trained-label mask.
	TypeChat Type = "chat"
)

// DType is the on-disk width of a token id.
type DType string

const (
	Uint16 DType = "uint16"
	Uint32 DType = "uint32"
)

// Size is the number of bytes of one id.
func (d DType) Size() int {
	if d == Uint16 {
		return 2
	}
	return 4
}

// DTypeFor is the narrowest dtype that holds the ids of a vocabulary.
func DTypeFor(vocabSize int) DType {
	if vocabSize <= 1<<16 {
		return Uint16
	}
	return Uint32
}

// TokenizerInfo identifies the tokenizer a store was made with.
type TokenizerInfo struct {
	SHA256    string `json:"sha256"`
	VocabSize int    `json:"vocab_size"`
	EOSID     int    `json:"eos_id"`
}

// Source is one input file.
type Source struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// Shard is the tokens of one chunk of a source file.
type Shard struct {
	Name   string `json:"name"`
	Source int    `json:"source"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
	// IDsSHA256 is the SHA-256 of the shard's .ids file.
	IDsSHA256 string `json:"ids_sha256"`
	Docs      int64  `json:"docs"`
	Tokens    int64  `json:"tokens"`
	Trained   int64  `json:"trained,omitempty"`
}

// Skipped counts the chat samples a build left out.
type Skipped struct {
	TooLong     int64 `json:"too_long"`
	NoTrainable int64 `json:"no_trainable"`
}

// Manifest is manifest.json.
type Manifest struct {
	Format    string        `json:"format"`
	Version   int           `json:"version"`
	Type      Type          `json:"type"`
	DType     DType         `json:"dtype"`
	Tokenizer TokenizerInfo `json:"tokenizer"`
	Docs      int64         `json:"docs"`
	Tokens    int64         `json:"tokens"`
	Trained   int64         `json:"trained,omitempty"`
	Sources   []Source      `json:"sources"`
	Shards    []Shard       `json:"shards"`
	Skipped   Skipped       `json:"skipped"`
}

// ErrCorrupt is wrapped by every error about a store whose files disagree
// with their manifest or with the format.
var ErrCorrupt = errors.New("tokstore: corrupt store")

func corruptf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
}

var shardName = regexp.MustCompile(`^[0-9]{5,9}$`)

// maxTokens bounds counts so that byte sizes computed from them cannot
// overflow an int64.
const maxTokens = 1 << 56

// ParseManifest decodes and checks manifest.json: known format, version,
// type and dtype, counts that add up, shard names that are plain numbers
// (no path can escape the store), sources that exist. It does not look at
// the shard files; Open does.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, corruptf("manifest.json: %v", err)
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *Manifest) check() error {
	switch {
	case m.Format != Format:
		return corruptf("manifest.json: format %q, want %q", m.Format, Format)
	case m.Version != Version:
		return corruptf("manifest.json: version %d; this pltune reads version %d", m.Version, Version)
	case m.Type != TypeText && m.Type != TypeChat:
		return corruptf("manifest.json: type %q, want text or chat", m.Type)
	case m.DType != Uint16 && m.DType != Uint32:
		return corruptf("manifest.json: dtype %q, want uint16 or uint32", m.DType)
	case m.Tokenizer.VocabSize <= 0 || (m.DType == Uint16 && m.Tokenizer.VocabSize > 1<<16):
		return corruptf("manifest.json: vocab_size %d does not fit dtype %s", m.Tokenizer.VocabSize, m.DType)
	case m.Tokenizer.EOSID < 0 || m.Tokenizer.EOSID >= m.Tokenizer.VocabSize:
		return corruptf("manifest.json: eos_id %d outside the vocabulary of %d", m.Tokenizer.EOSID, m.Tokenizer.VocabSize)
	}
	var docs, tokens, trained int64
	seen := map[string]bool{}
	for i, s := range m.Shards {
		where := fmt.Sprintf("manifest.json: shard %d (%q)", i, s.Name)
		switch {
		case !shardName.MatchString(s.Name):
			return corruptf("%s: name must be 5 to 9 digits", where)
		case seen[s.Name]:
			return corruptf("%s: listed twice", where)
		case s.Source < 0 || s.Source >= len(m.Sources):
			return corruptf("%s: source %d, but there are %d sources", where, s.Source, len(m.Sources))
		case s.Docs < 0 || s.Tokens < 0 || s.Trained < 0 || s.Docs > maxTokens || s.Tokens > maxTokens:
			return corruptf("%s: negative or impossible counts", where)
		case s.Trained > s.Tokens:
			return corruptf("%s: %d trained of %d tokens", where, s.Trained, s.Tokens)
		case m.Type == TypeText && s.Trained != 0:
			return corruptf("%s: a text store has no trained-label mask", where)
		case s.Offset < 0 || s.Length < 0 || s.Offset > m.Sources[s.Source].Size-s.Length:
			return corruptf("%s: bytes %d+%d outside its source of %d bytes", where, s.Offset, s.Length, m.Sources[s.Source].Size)
		}
		seen[s.Name] = true
		docs += s.Docs
		tokens += s.Tokens
		trained += s.Trained
		if tokens > maxTokens || docs > maxTokens {
			return corruptf("manifest.json: token count overflows")
		}
	}
	switch {
	case docs != m.Docs:
		return corruptf("manifest.json: docs %d, but the shards hold %d", m.Docs, docs)
	case tokens != m.Tokens:
		return corruptf("manifest.json: tokens %d, but the shards hold %d", m.Tokens, tokens)
	case trained != m.Trained:
		return corruptf("manifest.json: trained %d, but the shards hold %d", m.Trained, trained)
	}
	for i, s := range m.Sources {
		if s.Size < 0 {
			return corruptf("manifest.json: source %d (%q) has size %d", i, s.Path, s.Size)
		}
	}
	return nil
}

func jsonMarshal(m *Manifest) ([]byte, error) { return json.MarshalIndent(m, "", " ") }
