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
		text := tokenText(tok, seq.IDs, i)
		fmt.Fprintf(&b, "%5d %8d  %5s  %s\n", i, id, label, strconv.Quote(text))
	}
	return b.String()
}

// tokenText is the text token i adds to the decoded sequence: decoding it
// after its predecessor keeps the space that SentencePiece decoders strip
// from the start of a text. A token holding part of a multi-byte character
// shows as its vocabulary entry instead.
func tokenText(tok tokenTexter, ids []int, i int) string {
	text := tok.Decode(ids[i:i+1], false)
	if i > 0 {
		prev := tok.Decode(ids[i-1:i], false)
		if both := tok.Decode(ids[i-1:i+1], false); strings.HasPrefix(both, prev) {
			text = both[len(prev):]
		}
	}
	if !isPrintableToken(text) {
		if s, ok := tok.IDToToken(ids[i]); ok {
			return s
		}
	}
	return text
}

func isPrintableToken(s string) bool {
	return s != "" && !strings.ContainsRune(s, '\uFFFD')
}
