package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/pltune/pltune/tokenize"
)

func init() {
	register(&command{
		name:    "tokenize",
		summary: "turn text into token ids exactly as Hugging Face tokenizers do",
		run:     runTokenize,
	})
}

const tokenizeUsage = `tokenize --tokenizer PATH [--special]

Reads one JSON string per line on standard input and writes the token ids of
each as one JSON array per line, the ids Hugging Face's tokenizers give for
the same tokenizer.json. Added tokens written in the text (such as
<|eot_id|>) are always recognised; --special also adds what the tokenizer's
post-processor adds (usually BOS). Blank lines are skipped. A line that is not
a JSON string stops the command with exit status 1 after the lines before it
were written.`

func runTokenize(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "tokenize", tokenizeUsage)
	tokPath := fs.String("tokenizer", "", "tokenizer directory or tokenizer.json (required)")
	special := fs.Bool("special", false, "add the post-processor's special tokens (BOS, EOS)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *tokPath == "" {
		return usagef("--tokenizer is required")
	}
	tok, err := tokenize.Load(*tokPath)
	if err != nil {
		return err
	}
	return tokenizeLines(ctx, env.stdin, env.stdout, tok, *special)
}

// tokenizeBatch lines are encoded together on all cores.
const tokenizeBatch = 1024

// tokenizeLines encodes each JSON string line of r to w.
func tokenizeLines(ctx context.Context, r io.Reader, w io.Writer, tok *tokenize.Tokenizer, special bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 64<<20)
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	var texts []string
	flush := func() error {
		for _, ids := range tok.EncodeBatch(texts, special) {
			if err := writeIDs(bw, ids); err != nil {
				return err
			}
		}
		texts = texts[:0]
		return nil
	}
	for line := 1; sc.Scan(); line++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return fmt.Errorf("line %d: want a JSON string: %w", line, err)
		}
		texts = append(texts, s)
		if len(texts) == tokenizeBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading standard input: %w", err)
	}
	if err := flush(); err != nil {
		return err
	}
	return bw.Flush()
}

func writeIDs(w *bufio.Writer, ids []int) error {
	buf := make([]byte, 0, 8*len(ids)+3)
	buf = append(buf, '[')
	for i, id := range ids {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, int64(id), 10)
	}
	buf = append(buf, ']', '\n')
	_, err := w.Write(buf)
	return err
}
