package corpus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"
	"unicode/utf8"
)

// TextFormat is how a raw-text file (for continual pre-training) holds its
// documents.
type TextFormat int

const (
	// PlainText separates documents by blank lines (lines of white space
	// only). Each document is its lines joined by "\n", trimmed of
	// surrounding white space; a line break is "\n" or "\r\n".
	PlainText TextFormat = iota
	// TextJSONL holds one JSON object a line with the document in its
	// "text" field, untouched; blank lines are skipped.
	TextJSONL
)

func (f TextFormat) String() string {
	if f == TextJSONL {
		return "jsonl"
	}
	return "text"
}

// TextFormatOf is the format a raw-text file's name says: TextJSONL for
// .jsonl and .json, PlainText for anything else.
func TextFormatOf(path string) TextFormat {
	if strings.HasSuffix(path, ".jsonl") || strings.HasSuffix(path, ".json") {
		return TextJSONL
	}
	return PlainText
}

// Document is one raw-text document and where it starts.
type Document struct {
	Text string
	File string // the name the reader was given
	// Line is the 1-based line where the document starts; 0 when the
	// reader started inside a file (TextReader.Offset > 0) and cannot
	// count lines.
	Line int
	// Offset is the byte offset of the document's first line in the file.
	Offset int64
}

// TextReader reads the documents of raw text, streaming line by line in
// memory proportional to the longest document: no line length limit.
//
// Every byte of the input ends up in a document or is white space between
// documents; anything else is an error, a *RecordError with the file and
// the line (or, past a start inside the file, the byte offset), wrapping
// ErrInvalidUTF8 (in either format: bytes that are not UTF-8 would
// otherwise reach the tokenizer as replacement characters),
// ErrMalformedJSON or ErrMissingField (TextJSONL).
type TextReader struct {
	// Format is the file's layout.
	Format TextFormat
	// Name names the input in documents and errors.
	Name string
	// Offset is the input's position in the file when it is a section
	// starting inside it (a chunk of a large file): positions are then
	// byte offsets in the file, and lines are not counted.
	Offset int64

	r io.Reader
}

// NewTextReader returns a reader of r's documents in format f; name names
// r in documents and errors.
func NewTextReader(r io.Reader, name string, f TextFormat) *TextReader {
	return &TextReader{Format: f, Name: name, r: r}
}

// Documents yields the documents in order. An error ends the sequence, as
// does cancelling ctx (with ctx's error).
func (tr *TextReader) Documents(ctx context.Context) iter.Seq2[Document, error] {
	return func(yield func(Document, error) bool) {
		br := bufio.NewReaderSize(tr.r, 1<<20)
		countLines := tr.Offset == 0
		var para strings.Builder
		var doc Document // the plain-text document being gathered
		fail := func(line int, at int64, err error) {
			e := &RecordError{File: tr.Name, Row: -1, Offset: at, Err: err}
			if countLines {
				e.Line = line
			}
			yield(Document{}, e)
		}
		flush := func() bool {
			doc.Text = strings.TrimSpace(para.String())
			para.Reset()
			return doc.Text == "" || yield(doc, nil)
		}
		off := tr.Offset
		var long []byte
		for line := 1; ; line++ {
			if err := ctx.Err(); err != nil {
				yield(Document{}, err)
				return
			}
			b, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				long = append(long[:0], b...)
				for errors.Is(err, bufio.ErrBufferFull) {
					b, err = br.ReadSlice('\n')
					long = append(long, b...)
				}
				b = long
			}
			if err != nil && err != io.EOF {
				yield(Document{}, fmt.Errorf("corpus: %s: %w", tr.Name, err))
				return
			}
			at := off
			off += int64(len(b))
			if len(b) > 0 {
				content := trimEOL(b)
				if !utf8.Valid(content) {
					fail(line, at, fmt.Errorf("%w at byte %d of the line", ErrInvalidUTF8, invalidAt(content)))
					return
				}
				blank := len(bytes.TrimSpace(content)) == 0
				switch {
				case blank && tr.Format == TextJSONL:
				case tr.Format == TextJSONL:
					var rec struct {
						Text *string `json:"text"`
					}
					if jerr := json.Unmarshal(content, &rec); jerr != nil {
						fail(line, at, fmt.Errorf("%w: %v", ErrMalformedJSON, jerr))
						return
					}
					if rec.Text == nil {
						fail(line, at, fmt.Errorf("%w: no \"text\" string", ErrMissingField))
						return
					}
					d := Document{Text: *rec.Text, File: tr.Name, Offset: at}
					if countLines {
						d.Line = line
					}
					if !yield(d, nil) {
						return
					}
				case blank:
					if !flush() {
						return
					}
				default:
					if para.Len() == 0 {
						doc = Document{File: tr.Name, Offset: at}
						if countLines {
							doc.Line = line
						}
					}
					para.Write(content)
					para.WriteByte('\n')
				}
			}
			if err == io.EOF {
				break
			}
		}
		if tr.Format == PlainText {
			flush()
		}
	}
}

// invalidAt is the offset of b's first byte that is not UTF-8.
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// ReadText yields the documents of the raw-text files in order, each in
// the format its name says (TextFormatOf). The first error (a file that
// cannot be opened, a *RecordError) ends the sequence.
func ReadText(ctx context.Context, paths ...string) iter.Seq2[Document, error] {
	return func(yield func(Document, error) bool) {
		for _, path := range paths {
			f, err := os.Open(path)
			if err != nil {
				yield(Document{}, err)
				return
			}
			more, failed := true, false
			for d, err := range NewTextReader(f, path, TextFormatOf(path)).Documents(ctx) {
				failed = err != nil
				if !yield(d, err) {
					more = false
					break
				}
			}
			f.Close()
			if !more || failed {
				return
			}
		}
	}
}
