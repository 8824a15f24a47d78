package tokenize_test

import (
	"fmt"
	"log"
	"strconv"
	"strings"

	"github.com/pltune/pltune/tokenize"
)

// A tiny SentencePiece-style tokenizer.json in the layout of Llama 2 and
// Mistral: spaces become ▁, the post-processor adds <s>, and characters
// outside the vocabulary fall back to byte tokens.
const tinyTokenizerJSON = `{
  "added_tokens": [{"id": 1, "content": "<s>", "special": true}],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1]}}},
  "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true,
    "vocab": {"<unk>": 0, "<s>": 1, "<0x0A>": 2, "▁": 3, "a": 4, "l": 5, "m": 6, "k": 7, "o": 8, "t": 9,
              "▁a": 10, "▁m": 11, "▁ma": 12, "ot": 13, "ko": 14, "▁k": 15, "▁kot": 16, "al": 17, "▁al": 18},
    "merges": ["a l", "▁ a", "▁ m", "▁m a", "o t", "▁ k", "▁k ot", "▁ al"]}
}`

func ExampleFromJSON() {
	tok, err := tokenize.FromJSON([]byte(tinyTokenizerJSON), nil)
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("ala ma kota\n", true)
	fmt.Println(ids)
	var toks []string
	for _, id := range ids {
		s, _ := tok.IDToToken(id)
		toks = append(toks, strconv.Quote(s))
	}
	fmt.Println(strings.Join(toks, " "))
	fmt.Printf("%q\n", tok.Decode(ids, true))
	// Output:
	// [1 18 4 12 16 4 2]
	// "<s>" "▁al" "a" "▁ma" "▁kot" "a" "<0x0A>"
	// "ala ma kota\n"
}

func ExampleTokenizer_EncodeWithOffsets() {
	tok, err := tokenize.FromJSON([]byte(tinyTokenizerJSON), nil)
	if err != nil {
		log.Fatal(err)
	}
	text := "ma kota"
	enc := tok.EncodeWithOffsets(text, true)
	for i, id := range enc.IDs {
		o := enc.Offsets[i]
		fmt.Printf("%d %q\n", id, text[o[0]:o[1]])
	}
	// Output:
	// 1 ""
	// 12 "ma"
	// 16 " kot"
	// 4 "a"
}

func ExampleTokenizer_EncodeBatch() {
	tok, err := tokenize.FromJSON([]byte(tinyTokenizerJSON), nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, ids := range tok.EncodeBatch([]string{"kot", "ma", "ala"}, false) {
		fmt.Println(ids)
	}
	// Output:
	// [16]
	// [12]
	// [18 4]
}
