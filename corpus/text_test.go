package corpus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func readAllText(in string, f TextFormat, offset int64) ([]Document, error) {
	r := NewTextReader(strings.NewReader(in), "in", f)
	r.Offset = offset
	var out []Document
	for d, err := range r.Documents(context.Background()) {
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

func TestTextReader(t *testing.T) {
	long := strings.Repeat("Zażółć gęślą jaźń. ", 120000) // over the 1 MiB read buffer
	tests := []struct {
		name   string
		in     string
		format TextFormat
		want   []Document // File "in" is filled in
	}{
		{"paragraphs", "Ala ma kota.\nKot ma Alę.\n\n\nDrugi dokument.\n", PlainText,
			[]Document{{Text: "Ala ma kota.\nKot ma Alę.", Line: 1}, {Text: "Drugi dokument.", Line: 5, Offset: 28}}},
		{"CRLF and white-space lines", "  Pierwszy\r\n \t \r\nDrugi\r\n\u00a0\nTrzeci", PlainText,
			[]Document{{Text: "Pierwszy", Line: 1}, {Text: "Drugi", Line: 3, Offset: 17}, {Text: "Trzeci", Line: 5, Offset: 27}}},
		{"only blank lines", "\n \n\t\n", PlainText, nil},
		{"empty", "", TextJSONL, nil},
		{"jsonl", "{\"text\": \"  Pierwszy \"}\n\n{\"id\": 2, \"text\": \"Drugi\\nakapit\"}\r\n{\"text\": \"\"}", TextJSONL,
			[]Document{{Text: "  Pierwszy ", Line: 1}, {Text: "Drugi\nakapit", Line: 3, Offset: 25}, {Text: "", Line: 4, Offset: 61}}},
		{"a line longer than the buffer", "krótki\n\n" + long + "\n", PlainText,
			[]Document{{Text: "krótki", Line: 1}, {Text: strings.TrimSpace(long), Line: 3, Offset: 9}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAllText(tt.in, tt.format, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d documents, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				tt.want[i].File = "in"
				if got[i] != tt.want[i] {
					g, w := got[i], tt.want[i]
					g.Text, w.Text = abbrev(g.Text), abbrev(w.Text)
					t.Errorf("document %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func abbrev(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func TestTextReaderErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		format   TextFormat
		offset   int64
		sentinel error
		msg      string
		docs     int // yielded before the error
	}{
		{"malformed JSON", "{\"text\": \"a\"}\n{\"text\": \"b\"\n", TextJSONL, 0, ErrMalformedJSON, "corpus: in: line 2: malformed JSON", 1},
		{"no text field", "{\"content\": \"a\"}\n", TextJSONL, 0, ErrMissingField, "corpus: in: line 1: missing field: no \"text\" string", 0},
		{"null text", "\n\n{\"text\": null}\n", TextJSONL, 0, ErrMissingField, "line 3: missing field", 0},
		{"text not a string", "{\"text\": 7}\n", TextJSONL, 0, ErrMalformedJSON, "line 1: malformed JSON: json: cannot unmarshal number", 0},
		{"a JSON array", "[{\"text\": \"a\"}]\n", TextJSONL, 0, ErrMalformedJSON, "line 1:", 0},
		{"invalid UTF-8 in plain text", "Dobrze.\n\nZa\xbf\xf3\xb3\xe6 (Latin-2)\n", PlainText, 0, ErrInvalidUTF8, "corpus: in: line 3: invalid UTF-8 at byte 2 of the line", 1},
		{"invalid UTF-8 in JSONL", "{\"text\": \"\xff\"}\n", TextJSONL, 0, ErrInvalidUTF8, "line 1: invalid UTF-8 at byte 10", 0},
		{"a section names bytes", "{\"text\": \"a\"}\n{\n", TextJSONL, 1000, ErrMalformedJSON, "corpus: in: byte 1014: malformed JSON", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := readAllText(tt.in, tt.format, tt.offset)
			var re *RecordError
			if !errors.As(err, &re) || !errors.Is(err, tt.sentinel) {
				t.Fatalf("error %v (%T); want a *RecordError wrapping %v", err, err, tt.sentinel)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q; want it to contain %q", err, tt.msg)
			}
			if len(docs) != tt.docs {
				t.Errorf("%d documents before the error, want %d", len(docs), tt.docs)
			}
		})
	}
}

func TestReadText(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.txt")
	b := filepath.Join(dir, "b.jsonl")
	os.WriteFile(a, []byte("Pierwszy.\n\nDrugi.\n"), 0o644)
	os.WriteFile(b, []byte("{\"text\": \"Trzeci.\"}\n"), 0o644)
	var texts []string
	for d, err := range ReadText(context.Background(), a, b) {
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, d.File+": "+d.Text)
	}
	if want := []string{a + ": Pierwszy.", a + ": Drugi.", b + ": Trzeci."}; strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Errorf("read %q, want %q", texts, want)
	}

	n := 0
	var last error
	for _, err := range ReadText(context.Background(), a, filepath.Join(dir, "missing.txt"), b) {
		n++
		last = err
	}
	if n != 3 || !errors.Is(last, os.ErrNotExist) {
		t.Errorf("a missing second file: %d values, last error %v; want 2 documents then the open error", n, last)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, err := range ReadText(ctx, a) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: %v, want context.Canceled", err)
		}
	}
}

// FuzzTextReader: no input panics; plain text keeps every non-blank line,
// in order, in some document, and documents written with blank lines
// between them read back as themselves; every JSONL document is its
// line's "text".
func FuzzTextReader(f *testing.F) {
	for _, s := range []string{"Ala ma kota.\n\nDrugi.\n", "{\"text\": \"a\"}\n\n{\"text\": 1}\n", " \r\n\u00a0\n", "a\xffb\n", "{\"text\":\"\\ud800\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		docs, err := readAllText(string(in), PlainText, 0)
		if err != nil {
			var re *RecordError
			if !errors.As(err, &re) || !errors.Is(err, ErrInvalidUTF8) || re.Line < 1 {
				t.Fatalf("plain text: error %v; only invalid UTF-8, with its line, may fail", err)
			}
			if utf8.Valid(in) {
				t.Fatalf("valid UTF-8 rejected: %v", err)
			}
			return
		}
		var lines []string
		for _, l := range strings.Split(string(in), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		var got []string
		for _, d := range docs {
			if d.Text == "" || d.Text != strings.TrimSpace(d.Text) || d.Line < 1 {
				t.Fatalf("document %+v: empty, untrimmed or without a line", d)
			}
			for _, l := range strings.Split(d.Text, "\n") {
				if strings.TrimSpace(l) == "" {
					t.Fatalf("document %q holds a blank line", d.Text)
				}
				got = append(got, strings.TrimSpace(l))
			}
		}
		if strings.Join(got, "\n") != strings.Join(lines, "\n") {
			t.Fatalf("the documents' lines %q are not the input's non-blank lines %q", got, lines)
		}
		var w bytes.Buffer
		for _, d := range docs {
			w.WriteString(d.Text + "\n\n")
		}
		back, err := readAllText(w.String(), PlainText, 0)
		if err != nil || len(back) != len(docs) {
			t.Fatalf("written back: %d documents, %v; want %d", len(back), err, len(docs))
		}
		for i := range back {
			if back[i].Text != docs[i].Text {
				t.Fatalf("document %d read back as %q, was %q", i, back[i].Text, docs[i].Text)
			}
		}

		jdocs, err := readAllText(string(in), TextJSONL, 0)
		var re *RecordError
		if err != nil && (!errors.As(err, &re) || re.Line < 1) {
			t.Fatalf("JSONL: error %v without a line", err)
		}
		for _, d := range jdocs {
			line := strings.Split(string(in), "\n")[d.Line-1]
			var rec struct{ Text string }
			if json.Unmarshal([]byte(line), &rec) != nil || rec.Text != d.Text {
				t.Fatalf("document %q is not line %d's text (%q)", d.Text, d.Line, line)
			}
		}
	})
}
