package tokstore

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format":"pltune-tokstore","version":1,"type":"text","dtype":"uint16","tokenizer":{"sha256":"x","vocab_size":300,"eos_id":2},"docs":1,"tokens":3,"sources":[{"path":"a","size":10}],"shards":[{"name":"00000","source":0,"offset":0,"length":10,"sha256":"y","docs":1,"tokens":3}],"skipped":{"too_long":0,"no_trainable":0}}`))
	f.Add([]byte(`{"format":"pltune-tokstore","version":1,"type":"chat","dtype":"uint32","tokenizer":{"vocab_size":70000,"eos_id":0},"docs":0,"tokens":0,"sources":[],"shards":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		// What parses obeys the invariants Open relies on.
		var docs, tokens int64
		for _, s := range m.Shards {
			if !shardName.MatchString(s.Name) || s.Source < 0 || s.Source >= len(m.Sources) || s.Tokens < 0 || s.Docs < 0 {
				t.Fatalf("accepted shard %+v", s)
			}
			docs += s.Docs
			tokens += s.Tokens
		}
		if docs != m.Docs || tokens != m.Tokens {
			t.Fatalf("accepted counts %d/%d against shards %d/%d", m.Docs, m.Tokens, docs, tokens)
		}
	})
}

// FuzzOpenRows writes a one-shard store from fuzzed index and id bytes
// (the manifest made to agree with the file sizes) and reads every row:
// errors are fine, panics are not.
func FuzzOpenRows(f *testing.F) {
	idx := make([]byte, 8*4)
	for i, v := range []uint64{0, 2, 5, 8} {
		binary.LittleEndian.PutUint64(idx[8*i:], v)
	}
	ids := make([]byte, 16)
	for i := range 8 {
		binary.LittleEndian.PutUint16(ids[2*i:], uint16(i*7))
	}
	f.Add(idx, ids, uint8(3), false)
	f.Add(idx, ids, uint8(1), true)
	f.Fuzz(func(t *testing.T, idx, ids []byte, rowLen uint8, chat bool) {
		if len(idx) < 8 || len(idx)%8 != 0 || len(ids)%2 != 0 || len(idx) > 1<<12 || len(ids) > 1<<12 {
			return
		}
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "shards"), 0o755)
		tokens, docs := int64(len(ids)/2), int64(len(idx)/8-1)
		typ := TypeText
		if chat {
			typ = TypeChat
			mask := make([]byte, tokens)
			for i := range mask {
				mask[i] = byte(i % 2)
			}
			os.WriteFile(filepath.Join(dir, "shards", "00000.mask"), mask, 0o644)
		}
		os.WriteFile(filepath.Join(dir, "shards", "00000.idx"), idx, 0o644)
		os.WriteFile(filepath.Join(dir, "shards", "00000.ids"), ids, 0o644)
		m := &Manifest{Format: Format, Version: Version, Type: typ, DType: Uint16,
			Tokenizer: TokenizerInfo{VocabSize: 300, EOSID: 1}, Docs: docs, Tokens: tokens,
			Sources: []Source{{Path: "x", Size: 1}}, Shards: []Shard{{Name: "00000", Length: 1, Docs: docs, Tokens: tokens}}}
		if chat {
			m.Trained = tokens / 2
			m.Shards[0].Trained = tokens / 2
		}
		b, err := jsonMarshal(m)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644)
		s, err := Open(dir)
		if err != nil {
			return
		}
		defer s.Close()
		for _, pack := range []bool{false, true} {
			rows, err := OpenRows(s, int(rowLen)+1, pack)
			if err != nil {
				continue
			}
			for i := range min(rows.Len(), 64) {
				rows.Tokens(i)
				rows.Row(i)
			}
		}
	})
}
