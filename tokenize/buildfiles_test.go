package tokenize

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pltune/pltune/corpus"
)

// BuildFiles sums the stats of several files and names the file of a
// sample that fails to build or to read.
func TestBuildFiles(t *testing.T) {
	tok := newByteTokenizer()
	b, err := newSFTBuilder(tok, SFTOptions{Template: templateFor(t, "llama3_1"), MaxLen: 120})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	short := `{"messages": [{"role": "user", "content": "Kto napisał „Pana Tadeusza”?"}, {"role": "assistant", "content": "Adam Mickiewicz."}]}` + "\n"
	long := `{"messages": [{"role": "user", "content": "Pisz."}, {"role": "assistant", "content": "` + strings.Repeat("długo ", 40) + `"}]}` + "\n"
	a, c := filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "c.jsonl")
	os.WriteFile(a, []byte(short+long), 0o644)
	os.WriteFile(c, []byte(short), 0o644)
	seqs, st, err := b.BuildFiles(context.Background(), a, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 2 || st.Samples != 3 || st.Sequences != 2 || st.TooLong != 1 || st.Tokens != 2*seqs[0].Len() {
		t.Errorf("%d sequences, stats %+v; want 2 of 3 samples, 1 too long", len(seqs), st)
	}

	strict, err := newSFTBuilder(tok, SFTOptions{Template: templateFor(t, "llama3_1"), MaxLen: 120, Truncation: ErrorTooLong})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = strict.BuildFiles(context.Background(), c, a)
	var le *LengthError
	if !errors.As(err, &le) || !strings.HasPrefix(err.Error(), a+": ") {
		t.Errorf("a sample too long under ErrorTooLong: %v; want a *LengthError after the file name", err)
	}
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(short+`{"messages": [{"role": "asystent", "content": "x"}]}`+"\n"), 0o644)
	_, _, err = b.BuildFiles(context.Background(), bad)
	var re *corpus.RecordError
	if !errors.As(err, &re) || re.Line != 2 || strings.HasPrefix(err.Error(), bad) {
		t.Errorf("a bad record: %v; want the reader's *corpus.RecordError for line 2, not wrapped again", err)
	}
}
