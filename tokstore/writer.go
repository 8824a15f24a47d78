package tokstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Writer writes a store from token ids a program already has (converted
// from another format, or synthetic for benchmarks), one document at a
// time, into shards of about ShardTokens tokens. Build is the way from
// text files; a Writer's manifest lists no source files.
type Writer struct {
	dir      string
	m        Manifest
	w        *shardWriter
	perShard int64
}

// NewWriter starts a store of type typ in dir, which must not hold one.
// shardTokens is the size of a shard (0: 256 Mi tokens).
func NewWriter(dir string, typ Type, tok TokenizerInfo, shardTokens int64) (*Writer, error) {
	if typ != TypeText && typ != TypeChat {
		return nil, fmt.Errorf("tokstore: type %q, want text or chat", typ)
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		return nil, fmt.Errorf("tokstore: %s already holds a store", dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "shards"), 0o755); err != nil {
		return nil, err
	}
	if shardTokens <= 0 {
		shardTokens = 256 << 20
	}
	w := &Writer{dir: dir, perShard: shardTokens, m: Manifest{
		Format: Format, Version: Version, Type: typ, DType: DTypeFor(tok.VocabSize), Tokenizer: tok,
		Sources: []Source{{Path: "(tokstore.Writer)"}}, Shards: []Shard{},
	}}
	return w, nil
}

// Add appends a document; trained marks its trained labels (chat stores
// only, one entry per id).
func (w *Writer) Add(ids []int, trained []bool) error {
	if (w.m.Type == TypeChat) != (trained != nil) || (trained != nil && len(trained) != len(ids)) {
		return errors.New("tokstore: Writer.Add: a chat store needs one trained flag per id, a text store none")
	}
	for _, id := range ids {
		if id < 0 || id >= w.m.Tokenizer.VocabSize {
			return fmt.Errorf("tokstore: Writer.Add: id %d outside the vocabulary of %d", id, w.m.Tokenizer.VocabSize)
		}
	}
	if w.w == nil {
		sw, err := newShardWriter(filepath.Join(w.dir, "shards", unitName(len(w.m.Shards))), w.m.DType, w.m.Type == TypeChat)
		if err != nil {
			return err
		}
		w.w = sw
	}
	var mask []byte
	if trained != nil {
		mask = make([]byte, len(trained))
		for i, t := range trained {
			if t {
				mask[i] = 1
			}
		}
	}
	if err := w.w.add(ids, mask); err != nil {
		return err
	}
	if w.w.sh.Tokens >= w.perShard {
		return w.closeShard()
	}
	return nil
}

func (w *Writer) closeShard() error {
	if w.w == nil {
		return nil
	}
	sh, err := w.w.close()
	w.w = nil
	if err != nil {
		return err
	}
	sh.Name = unitName(len(w.m.Shards))
	w.m.Shards = append(w.m.Shards, sh)
	w.m.Docs += sh.Docs
	w.m.Tokens += sh.Tokens
	w.m.Trained += sh.Trained
	return nil
}

// Close finishes the last shard and writes the manifest.
func (w *Writer) Close() (*Manifest, error) {
	if err := w.closeShard(); err != nil {
		return nil, err
	}
	if err := w.m.check(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(&w.m, "", " ")
	if err != nil {
		return nil, err
	}
	return &w.m, writeAtomic(filepath.Join(w.dir, "manifest.json"), append(b, '\n'))
}

// Abort removes the unfinished shard's temporary files.
func (w *Writer) Abort() {
	if w.w != nil {
		w.w.abort()
	}
}
