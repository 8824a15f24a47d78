package tokenize

import (
	"fmt"
	"strconv"
	"strings"
)

// Dump renders seq for a person to check before a run starts: a summary line,
// then one line per token with its position, id, text and whether it is
// trained ("train") or not ("-"), so the chat template, the BOS and the
// label mask can be seen at a glance.
//
//	pos      id  label  token
//	  0  128000      -  "<|begin_of_text|>"
//	 17   17206  train  "Stol"
func Dump(tok *Tokenizer, seq Sequence) string {
	return dump(tok, seq)
}

// tokenTexter is what Dump needs of a tokenizer.
type tokenTexter interface {
	Decode(ids []int, skipSpecialTokens bool) string
	IDToToken(id int) (string, bool)
}

func dump(tok tokenTexter, seq Sequence) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d tokens, %d trained\n", seq.Len(), seq.Trainable())
	fmt.Fprintf(&b, "%5s %8s  %5s  %s\n", "pos", "id", "label", "token")
	for i, id := range seq.IDs {
		label := "-"
		switch {
		case i >= len(seq.Labels):
			label = "?"
		case seq.Labels[i] == id:
			label = "train"
		case seq.Labels[i] != IgnoreIndex:
			label = strconv.Itoa(seq.Labels[i])
		}
		text := tok.Decode([]int{id}, false)
		if !isPrintableToken(text) {
			// A byte of a multi-byte character decodes to U+FFFD on its
			// own; the vocabulary entry says more.
			if s, ok := tok.IDToToken(id); ok {
				text = s
			}
		}
		fmt.Fprintf(&b, "%5d %8d  %5s  %s\n", i, id, label, strconv.Quote(text))
	}
	return b.String()
}

func isPrintableToken(s string) bool {
	return s != "" && !strings.ContainsRune(s, '\uFFFD')
}
