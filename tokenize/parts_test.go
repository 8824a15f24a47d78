package tokenize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGPTStyleSplit compares the hand-written matchers with the pieces HF's
// pre-tokenizers give (Llama 3.1's and Qwen 3's Split, and ByteLevel's
// built-in GPT-2 regex), recorded from @anush008/tokenizers 0.6.0.
func TestGPTStyleSplit(t *testing.T) {
	tests := []struct {
		in                 string
		llama3, qwen, gpt2 []string
	}{
		{"a\u00a0\u00a0b", []string{"a", "\u00a0", "\u00a0b"}, []string{"a", "\u00a0", "\u00a0b"}, []string{"a", "\u00a0", "\u00a0", "b"}},
		{"x   \n  y", []string{"x", "   \n", " ", " y"}, []string{"x", "   \n", " ", " y"}, []string{"x", "   \n ", " y"}},
		{"x \t\ny", []string{"x", " \t\n", "y"}, []string{"x", " \t\n", "y"}, []string{"x", " \t", "\n", "y"}},
		{"1234567", []string{"123", "456", "7"}, []string{"1", "2", "3", "4", "5", "6", "7"}, []string{"1234567"}},
		{"Hello world's 'LL 'ſx", []string{"Hello", " world", "'s", " '", "LL", " '", "ſx"}, []string{"Hello", " world", "'s", " '", "LL", " '", "ſx"}, []string{"Hello", " world", "'s", " '", "LL", " '", "ſx"}},
		{"  leading", []string{" ", " leading"}, []string{" ", " leading"}, []string{" ", " leading"}},
		{"trailing  ", []string{"trailing", "  "}, []string{"trailing", "  "}, []string{"trailing", "  "}},
		{"a,b!! ?? (c)\n\nd", []string{"a", ",b", "!!", " ??", " (", "c", ")\n\n", "d"}, []string{"a", ",b", "!!", " ??", " (", "c", ")\n\n", "d"}, []string{"a", ",", "b", "!!", " ??", " (", "c", ")", "\n", "\n", "d"}},
		{"ąę żółw 12 345,67 zł", []string{"ąę", " żółw", " ", "12", " ", "345", ",", "67", " zł"}, []string{"ąę", " żółw", " ", "1", "2", " ", "3", "4", "5", ",", "6", "7", " zł"}, []string{"ąę", " żółw", " 12", " 345", ",", "67", " zł"}},
		{"\r\n\r\n x", []string{"\r\n\r\n", " x"}, []string{"\r\n\r\n", " x"}, []string{"\r\n\r\n", " x"}},
		{"tab\t\tx", []string{"tab", "\t", "\tx"}, []string{"tab", "\t", "\tx"}, []string{"tab", "\t", "\t", "x"}},
		{"emoji 👍🏽 ok", []string{"emoji", " 👍🏽", " ok"}, []string{"emoji", " 👍🏽", " ok"}, []string{"emoji", " 👍🏽", " ok"}},
		{"x²³y ①②", []string{"x", "²³", "y", " ", "①②"}, []string{"x", "²", "³", "y", " ", "①", "②"}, []string{"x", "²³", "y", " ①②"}},
	}
	pieces := func(g gptStyle, s string) []string {
		var out []string
		for _, p := range (splitPre{m: g, b: isolated}).split(nstring{s: s}, nil) {
			out = append(out, p.s)
		}
		return out
	}
	for _, tt := range tests {
		for _, c := range []struct {
			g    gptStyle
			want []string
		}{{llama3Style, tt.llama3}, {qwenStyle, tt.qwen}, {gpt2Style, tt.gpt2}} {
			if got := pieces(c.g, tt.in); !slices.Equal(got, c.want) {
				t.Errorf("style %d, %q: got %q, want %q", c.g, tt.in, got, c.want)
			}
		}
	}
}

func TestLossyUTF8(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{[]byte("zażółć"), "zażółć"},
		{[]byte{0xC5}, "\uFFFD"},
		{[]byte{0xE2, 0x82}, "\uFFFD"},                   // truncated: one replacement, not two
		{[]byte{0xE2, 0x82, 'a'}, "\uFFFDa"},             // a maximal subpart before a valid byte
		{[]byte{0xED, 0xA0, 0x80}, "\uFFFD\uFFFD\uFFFD"}, // surrogates: each byte
		{[]byte{0xF0, 0x9F, 0x98}, "\uFFFD"},
		{[]byte{0x80, 0x80}, "\uFFFD\uFFFD"},
		{[]byte{0xFF, 'x'}, "\uFFFDx"},
	}
	for _, tt := range tests {
		if got := lossyUTF8(tt.in); got != tt.want {
			t.Errorf("lossyUTF8(% x) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDecoders(t *testing.T) {
	tests := []struct {
		name string
		d    decoder
		in   []string
		want []string
	}{
		{"byte fallback valid", byteFallbackDecoder{}, []string{"<0xE5>", "<0x8F>", "<0xAB>", "a"}, []string{"叫", "a"}},
		{"byte fallback invalid", byteFallbackDecoder{}, []string{"<0xE5>", "<0x8F>", "a"}, []string{"\uFFFD", "\uFFFD", "a"}},
		{"byte fallback lookalike", byteFallbackDecoder{}, []string{"<0xZZ>", "<0x0A>"}, []string{"<0xZZ>", "\n"}},
		{"strip left", stripDecoder{content: 'H', start: 1}, []string{"Hey", " friend!", "HHH"}, []string{"ey", " friend!", "HH"}},
		{"strip right", stripDecoder{content: 'y', stop: 1}, []string{"Hey", " friend!"}, []string{"He", " friend!"}},
		{"metaspace", metaspaceDecoder{replacement: '▁', dropFirst: true}, []string{"▁Hey", "▁friend!"}, []string{"Hey", " friend!"}},
		{"byte level", byteLevelDecoder{}, []string{"Za", "Å¼", "Ã³", "ÅĤ", "Ġ<|x y|>"}, []string{"ZażółĠ<|x y|>"}}, // a token with a character outside the byte alphabet keeps its UTF-8
		{"fuse", fuseDecoder{}, []string{"a", "b"}, []string{"ab"}},
	}
	for _, tt := range tests {
		if got := tt.d.decodeChain(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestAddedTokenOptions follows HF's added_vocabulary tests for lstrip,
// rstrip and single_word.
func TestAddedTokenOptions(t *testing.T) {
	m := newAddedMatcher([]AddedToken{
		{ID: 0, Content: "<mask>", LStrip: true, RStrip: true, SingleWord: true},
		{ID: 1, Content: "[CLS]"},
		{ID: 2, Content: "ony", SingleWord: true},
	}, func(a AddedToken) string { return a.Content })
	tests := []struct {
		in   string
		want []string // pieces, added tokens marked with #id
	}{
		{"Hi <mask> there\t<mask>\t<mask>\u2000", []string{"Hi", "# <mask> ", "there", "#\t<mask>\t", "#<mask>\u2000"}},
		{"[CLS] Anthony ony", []string{"#[CLS]", " Anthony ", "#ony"}},
		{"a<mask> <mask>b", []string{"a<mask> <mask>b"}},
		{"", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, sg := range m.split(tt.in, nil) {
			p := tt.in[sg.start:sg.end]
			if sg.id >= 0 {
				p = "#" + p
			}
			got = append(got, p)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// tinyByteLevel is a minimal byte-level BPE tokenizer.json in the layout
// of Llama 3's.
func tinyByteLevel(t testing.TB) []byte {
	t.Helper()
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteToChar[b])] = b
	}
	merges := [][2]string{{"a", "b"}, {"ab", "c"}, {"Ġ", "a"}, {"Å", "¼"}, {"Ġa", "b"}}
	for i, m := range merges {
		vocab[m[0]+m[1]] = 256 + i
	}
	tj := map[string]any{
		"added_tokens": []map[string]any{
			{"id": 300, "content": "<|end|>", "special": true},
			{"id": 301, "content": "<tool>", "special": false},
		},
		"normalizer": map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": patLlama3}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "<|end|>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"special_tokens": map[string]any{"<|end|>": map[string]any{"id": "<|end|>", "ids": []int{300}, "tokens": []string{"<|end|>"}}},
		},
		"decoder": map[string]any{"type": "ByteLevel"},
		"model":   map[string]any{"type": "BPE", "vocab": vocab, "merges": merges, "ignore_merges": true},
	}
	b, err := json.Marshal(tj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTinyByteLevel(t *testing.T) {
	tk, err := FromJSON(tinyByteLevel(t), []byte(`{"bos_token": {"content": "<|end|>"}, "chat_template": [{"name": "default", "template": "{{x}}"}, {"name": "tool_use", "template": "t"}], "add_bos_token": true}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in      string
		special bool
		want    []int
	}{
		{"abc ab", false, []int{257, 260}},
		{"abc ab", true, []int{300, 257, 260}},
		{"ż<tool>x<|end|>", false, []int{259, 301, 'x', 300}},
		{"z\u0307", false, []int{259}}, // NFC composes ż before the model sees it
		{"", true, []int{300}},
	}
	for _, tt := range tests {
		if got := tk.Encode(tt.in, tt.special); !slices.Equal(got, tt.want) {
			t.Errorf("Encode(%q, %v) = %v, want %v", tt.in, tt.special, got, tt.want)
		}
	}
	if got := tk.Decode([]int{300, 257, 260, 301}, true); got != "abc ab<tool>" {
		t.Errorf("Decode skipping special = %q", got)
	}
	if tk.VocabSize() != 302 || !tk.IsSpecial(300) || tk.IsSpecial(301) || tk.IsSpecial(5) {
		t.Errorf("VocabSize %d, IsSpecial(300/301/5) = %v/%v/%v", tk.VocabSize(), tk.IsSpecial(300), tk.IsSpecial(301), tk.IsSpecial(5))
	}
	if id, ok := tk.TokenToID("Ġab"); !ok || id != 260 {
		t.Errorf("TokenToID(Ġab) = %d, %v", id, ok)
	}
	if s, ok := tk.IDToToken(301); !ok || s != "<tool>" {
		t.Errorf("IDToToken(301) = %q, %v", s, ok)
	}
	c := tk.Config()
	if c.BOSToken != "<|end|>" || c.ChatTemplate != "{{x}}" || c.ChatTemplates["tool_use"] != "t" || c.AddBOSToken == nil || !*c.AddBOSToken || c.AddEOSToken != nil {
		t.Errorf("Config = %+v", c)
	}
	// ł has no merge: its two byte tokens both map to the whole character.
	enc := tk.EncodeWithOffsets("x ł", true)
	if want := [][2]int{{0, 0}, {0, 1}, {1, 2}, {2, 4}, {2, 4}}; !slices.Equal(enc.Offsets, want) {
		t.Errorf("offsets %v, want %v (ids %v)", enc.Offsets, want, enc.IDs)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "no tokenizer.json") {
		t.Errorf("empty dir: %v", err)
	}
	bad := []struct {
		json, want string
	}{
		{`{"model": {"type": "Unigram", "vocab": []}}`, `model type "Unigram" is not supported`},
		{`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}`, `merge 0 ("a" "b"): token not in the vocab`},
		{`{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(?=x)"}, "behavior": "Isolated"}, "model": {"vocab": {}}}`, `regex "(?=x)"`},
		{`{"normalizer": {"type": "Precompiled"}, "model": {"vocab": {}}}`, `normalizer type "Precompiled" is not supported`},
		{`{"model": null}`, `no model`},
		{`[1, 2]`, `want '{'`},
	}
	for _, b := range bad {
		if _, err := FromJSON([]byte(b.json), nil); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("FromJSON(%s): error %v, want one containing %q", b.json, err, b.want)
		}
	}
	// A bare tokenizer.json loads without its config.
	p := filepath.Join(dir, "tok.json")
	if err := os.WriteFile(p, tinyByteLevel(t), 0o644); err != nil {
		t.Fatal(err)
	}
	tk, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Config().Raw != nil {
		t.Errorf("bare file: config %+v", tk.Config())
	}
}

func TestConfigFromSpecialTokensMap(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("tokenizer.json", string(tinyByteLevel(t)))
	write("tokenizer_config.json", `{"eos_token": "<|end|>", "model_max_length": 1000000000000000019884624838656}`)
	write("special_tokens_map.json", `{"eos_token": "ignored", "pad_token": {"content": "<pad>", "lstrip": false}}`)
	write("chat_template.jinja", "{{ messages }}")
	tk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := tk.Config()
	if c.EOSToken != "<|end|>" || c.PadToken != "<pad>" || c.ModelMaxLength != 0 || c.ChatTemplate != "{{ messages }}" {
		t.Errorf("Config = %+v", c)
	}
}

// TestMergeStrategiesAgree: the linear merge used for short words and HF's
// heap order used for long ones give the same tokens on every word.
func TestMergeStrategiesAgree(t *testing.T) {
	for _, name := range []string{"llama2", "llama3_1"} {
		t.Run(name, func(t *testing.T) {
			m := testTokenizer(t, name).model
			var small, heap bpeScratch
			words := 0
			for _, g := range readGoldens(t, name) {
				for _, w := range strings.FieldsFunc(g.S, func(r rune) bool { return r == ' ' }) {
					small.syms = m.initialSymbols(w, small.syms[:0])
					heap.syms = m.initialSymbols(w, heap.syms[:0])
					m.mergeSmall(&small)
					m.mergeHeap(&heap)
					var a, b []int32
					for _, s := range small.syms {
						a = append(a, s.id, s.len)
					}
					for _, s := range heap.syms {
						if s.len > 0 {
							b = append(b, s.id, s.len)
						}
					}
					if !slices.Equal(a, b) {
						t.Fatalf("%q: linear merge %v, heap merge %v", w, a, b)
					}
					words++
				}
			}
			if words < 1000 {
				t.Fatalf("only %d words", words)
			}
		})
	}
}
