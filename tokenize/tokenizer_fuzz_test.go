package tokenize

import (
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzFromJSON: no input makes loading panic, and whatever loads encodes
// and decodes without panicking.
func FuzzFromJSON(f *testing.F) {
	f.Add(tinyByteLevel(f))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"▁": 0, "a": 1, "<0x0A>": 2, "<unk>": 3, "▁a": 4}, "merges": [["▁", "a"]], "byte_fallback": true, "fuse_unk": true, "unk_token": "<unk>"}, "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}, "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}}`))
	f.Add([]byte(`{"model": {"vocab": {"a": 0}, "merges": ["a a"]}, "pre_tokenizer": {"type": "Metaspace", "prepend_scheme": "first"}}`))
	f.Add([]byte(`{"added_tokens": [{"id": 1, "content": "x", "lstrip": true, "rstrip": true, "single_word": true, "normalized": true}], "model": {"vocab": {"a": 0}}}`))
	f.Add([]byte(`{"model": {"vocab": {"a\u0000\"": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"String": "a"}, "behavior": "MergedWithNext", "invert": true}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := FromJSON(data, nil)
		if err != nil {
			return
		}
		for _, s := range []string{"", "a a\n", "ż <0x0A> x", "\xff\xfe"} {
			enc := tk.EncodeWithOffsets(s, true)
			if len(enc.IDs) != len(enc.Offsets) {
				t.Fatalf("%q: %d ids, %d offsets", s, len(enc.IDs), len(enc.Offsets))
			}
			tk.Decode(enc.IDs, true)
			tk.Decode(enc.IDs, false)
		}
	})
}

// FuzzEncode: no text makes encoding panic; offsets stay in range; byte-level
// tokenizers give back their valid UTF-8 input.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "Zażółć gęślą jaźń", "a\u00a0\u00a0b\r\n", "<s>x</s><|im_end|>", "'ſ'LL", "\xff\xc5", "👨‍👩‍👧 12345"} {
		f.Add(s)
	}
	tiny, err := FromJSON(tinyByteLevel(f), nil)
	if err != nil {
		f.Fatal(err)
	}
	tks := map[string]*Tokenizer{"tiny": tiny}
	// Reference tokenizers join when installed; the tiny one always runs.
	for _, name := range referenceTokenizers {
		if dir, err := referenceDir(name); err == nil {
			tk, err := loadShared(name, dir)
			if err != nil {
				f.Fatal(err)
			}
			tks[name] = tk
		}
	}
	byteLevel := map[string]bool{"tiny": true, "llama3_1": true}
	f.Fuzz(func(t *testing.T, s string) {
		for name, tk := range tks {
			enc := tk.EncodeWithOffsets(s, true)
			if !slices.Equal(enc.IDs, tk.Encode(s, true)) {
				t.Fatalf("%s %q: EncodeWithOffsets and Encode differ", name, s)
			}
			for _, o := range enc.Offsets {
				if o[0] < 0 || o[0] > o[1] || o[1] > len(s) {
					t.Fatalf("%s %q: offsets %v out of range", name, s, o)
				}
			}
			if byteLevel[name] && utf8.ValidString(s) {
				want := s
				if name == "tiny" {
					want = tiny.normalizer.normalize(nstring{s: s}).s
				}
				if got := tk.Decode(tk.Encode(s, false), false); got != want {
					t.Fatalf("%s: Decode(Encode(%q)) = %q", name, s, got)
				}
			}
		}
	})
}
