package corpus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func readAll(t *testing.T, path string, opts Options) ([]Sample, *Reader) {
	t.Helper()
	r, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []Sample
	for s, err := range r.Samples(context.Background()) {
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, s)
	}
	return out, r
}

func readPairs(t *testing.T, path string, opts Options) []PreferencePair {
	t.Helper()
	var out []PreferencePair
	for p, err := range ReadPairs(context.Background(), path, opts) {
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, p)
	}
	return out
}

func TestReadPLLuMIC(t *testing.T) {
	samples, r := readAll(t, "testdata/pllumic.json", Options{Origin: OriginOrganic})
	if r.Format() != PLLuMIC {
		t.Fatalf("detected %s, want pllumic", r.Format())
	}
	if len(samples) != 4 {
		t.Fatalf("read %d samples, want 4", len(samples))
	}
	s := samples[1]
	if s.ID != "2" || s.System != "Jesteś pomocnym asystentem. Odpowiadasz zwięźle i po polsku." || len(s.Messages) != 4 ||
		s.Type != "Dialog" || s.Language != "pol" || s.Origin != OriginOrganic {
		t.Errorf("sample 2 = %+v", s)
	}
	if got := samples[2]; got.Subtype != "NER" || !reflect.DeepEqual(got.Sources, []string{"NKJP"}) || got.System != "" {
		t.Errorf("sample 3 = %+v", got)
	}
	if a := r.Accounting(); a.Read != 4 || a.Accepted != 4 || a.Rejected != 0 {
		t.Errorf("accounting %+v", a)
	}
}

func TestDetectFormat(t *testing.T) {
	for file, want := range map[string]Format{
		"pllumic.json": PLLuMIC, "openai.jsonl": OpenAI, "sharegpt.jsonl": ShareGPT,
		"alpaca.jsonl": Alpaca, "preference.jsonl": Preference, "triples.jsonl": Triples,
	} {
		got, err := DetectFormat(filepath.Join("testdata", file))
		if err != nil || got != want {
			t.Errorf("DetectFormat(%s) = %s, %v; want %s", file, got, err, want)
		}
	}
	dir := t.TempDir()
	long := filepath.Join(dir, "long.jsonl")
	os.WriteFile(long, []byte(`{"id": 1, "messages": [{"role": "user", "content": "`+strings.Repeat("ą", 70000)+`"}]}`+"\n"), 0o644)
	if got, err := DetectFormat(long); err != nil || got != OpenAI {
		t.Errorf("DetectFormat on a 140 KB first record = %s, %v", got, err)
	}
	empty := filepath.Join(dir, "empty.jsonl")
	os.WriteFile(empty, []byte("\n\n"), 0o644)
	if _, err := DetectFormat(empty); err == nil {
		t.Error("DetectFormat on an empty file: no error")
	}
}

func TestReadJSONLFormats(t *testing.T) {
	tests := []struct {
		file  string
		n     int
		first Sample
	}{
		{"openai.jsonl", 3, Sample{ID: "openai.jsonl:1", System: "Odpowiadaj po polsku.", Messages: []Message{
			{RoleUser, "Przetłumacz na angielski: „Dzień dobry, jak się masz?”"}, {RoleAssistant, "Good morning, how are you?"}}}},
		{"sharegpt.jsonl", 2, Sample{ID: "sg-1", System: "Jesteś ekspertem od gramatyki.", Messages: []Message{
			{RoleUser, "Jak poprawnie: „w cudzysłowiu” czy „w cudzysłowie”?"}, {RoleAssistant, "Poprawnie: „w cudzysłowie”."}}}},
		{"alpaca.jsonl", 2, Sample{ID: "alpaca.jsonl:1", Messages: []Message{
			{RoleUser, "Streść tekst w jednym zdaniu.\n\nWisła jest najdłuższą rzeką Polski. Wypływa z Baraniej Góry i uchodzi do Morza Bałtyckiego."},
			{RoleAssistant, "Wisła, najdłuższa rzeka Polski, płynie od Baraniej Góry do Bałtyku."}}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			samples, _ := readAll(t, filepath.Join("testdata", tt.file), Options{})
			if len(samples) != tt.n {
				t.Fatalf("read %d, want %d", len(samples), tt.n)
			}
			if !reflect.DeepEqual(samples[0], tt.first) {
				t.Errorf("first sample\n got %+v\nwant %+v", samples[0], tt.first)
			}
		})
	}
	// The file's origin wins over the caller's default.
	samples, _ := readAll(t, "testdata/openai.jsonl", Options{Origin: OriginConverted})
	if samples[0].Origin != OriginConverted || samples[2].Origin != OriginSynthetic || samples[2].ID != "oa-3" {
		t.Errorf("origins %q %q", samples[0].Origin, samples[2].Origin)
	}
}

func TestReadPreferenceFormats(t *testing.T) {
	pairs := readPairs(t, "testdata/preference.jsonl", Options{})
	if len(pairs) != 2 {
		t.Fatalf("read %d pairs", len(pairs))
	}
	p := pairs[0]
	if len(p.Prompt) != 1 || p.Prompt[0].Role != RoleUser || len(p.Chosen) != 1 ||
		p.Chosen[0].Content != "Poszedłem na spacer, mimo że padał deszcz." || *p.ChosenRating != 5 || *p.RejectedRating != 2 {
		t.Errorf("pair 1 = %+v", p)
	}
	if q := pairs[1]; len(q.Prompt) != 2 || q.Prompt[0].Role != RoleSystem || q.ChosenRating != nil {
		t.Errorf("pair 2 = %+v", q)
	}
	tr := readPairs(t, "testdata/triples.jsonl", Options{})
	want := PreferencePair{ID: "tr-2", Prompt: []Message{{RoleSystem, "Pisz zgodnie z zasadami polskiej interpunkcji."}, {RoleUser, "Popraw: „Pozdrawiam,”"}},
		Chosen: []Message{{RoleAssistant, "Pozdrawiam"}}, Rejected: []Message{{RoleAssistant, "Pozdrawiam,"}}}
	if len(tr) != 2 || !reflect.DeepEqual(tr[1], want) || tr[0].ID != "triples.jsonl:1" {
		t.Errorf("triples = %+v", tr)
	}
	for _, err := range ReadSamples(context.Background(), "testdata/triples.jsonl", Options{}) {
		if err == nil || !strings.Contains(err.Error(), "Pairs") {
			t.Errorf("Samples on triples: %v", err)
		}
	}
}

// TestValidationErrors reads invalid.jsonl leniently: every line but two is
// rejected with its own sentinel, line and message index.
func TestValidationErrors(t *testing.T) {
	var q bytes.Buffer
	samples, r := readAll(t, "testdata/invalid.jsonl", Options{Policy: Lenient, Quarantine: &q})
	if len(samples) != 2 || samples[1].ID != "9" {
		t.Fatalf("accepted %+v", samples)
	}
	a := r.Accounting()
	if a.Read != 9 || a.Accepted != 2 || a.Rejected != 7 || a.Read != a.Accepted+a.Rejected {
		t.Errorf("accounting %+v", a)
	}
	raw, _ := os.ReadFile("testdata/invalid.jsonl")
	lines := bytes.Split(raw, []byte("\n"))
	want := []struct {
		line   int
		reason string
	}{
		{2, "malformed JSON"},
		{3, `message 2: unknown role "asistant"; want system, user or assistant`},
		{4, "message 1: empty content"},
		{5, "message 1: roles out of order: role assistant where user was expected"},
		{6, "message 2: system message not first"},
		{7, "message 1: conversation does not end with an assistant turn: the last turn is user"},
		{9, "invalid UTF-8"},
	}
	ql := bytes.Split(bytes.TrimSpace(q.Bytes()), []byte("\n"))
	if len(ql) != len(want) {
		t.Fatalf("quarantine has %d lines, want %d:\n%s", len(ql), len(want), q.String())
	}
	for i, w := range want {
		var got quarantineLine
		if err := json.Unmarshal(ql[i], &got); err != nil {
			t.Fatal(err)
		}
		if got.Line != w.line || got.File != "invalid.jsonl" || !strings.HasPrefix(got.Reason, w.reason) {
			t.Errorf("quarantine %d: %+v; want line %d reason %q", i, got, w.line, w.reason)
		}
		rec := []byte(got.Record)
		if got.RecordBase64 != "" {
			rec = mustBase64(t, got.RecordBase64)
		}
		if !bytes.Equal(rec, lines[w.line-1]) {
			t.Errorf("line %d quarantined as %q, want the raw line %q", w.line, rec, lines[w.line-1])
		}
	}
}

func TestStrictStopsAtFirst(t *testing.T) {
	var errs []error
	n := 0
	for _, err := range ReadSamples(context.Background(), "testdata/invalid.jsonl", Options{}) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if n != 1 || len(errs) != 1 {
		t.Fatalf("strict: %d samples, errors %v", n, errs)
	}
	var re *RecordError
	if !errors.As(errs[0], &re) || !errors.Is(errs[0], ErrMalformedJSON) || re.Line != 2 || re.File != "invalid.jsonl" {
		t.Errorf("error %#v", errs[0])
	}
	if !strings.HasPrefix(errs[0].Error(), "corpus: invalid.jsonl: line 2: malformed JSON") {
		t.Errorf("message %q", errs[0])
	}
}

// TestRecordErrors checks each validation error on a single record, in
// every text layout that can express it.
func TestRecordErrors(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		rec    string
		opts   Options
		want   error
		msg    string
	}{
		{"unknown role", OpenAI, `{"messages":[{"role":"user","content":"a"},{"role":"asistant","content":"b"}]}`, Options{}, ErrUnknownRole,
			`corpus: f: line 1: message 2: unknown role "asistant"; want system, user or assistant`},
		{"sharegpt speaker", ShareGPT, `{"conversations":[{"from":"human","value":"a"},{"from":"robot","value":"b"}]}`, Options{}, ErrUnknownRole, `message 2: unknown role "robot"`},
		{"empty", OpenAI, `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":""}]}`, Options{}, ErrEmptyContent, "message 2: empty content"},
		{"empty alpaca", Alpaca, `{"instruction":"a","input":"","output":" "}`, Options{}, ErrEmptyContent, "message 2"},
		{"order", OpenAI, `{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}`, Options{}, ErrRoleOrder, "message 2: roles out of order"},
		{"system late", PLLuMIC, `[{"conv_id":1,"messages":[{"role":"user","content":"a","seq":0},{"role":"system","content":"b","seq":-1},{"role":"assistant","content":"c","seq":0}]}]`, Options{}, ErrSystemNotFirst, "message 2"},
		{"no final", PLLuMIC, `[{"conv_id":1,"messages":[{"role":"system","content":"","seq":-1},{"role":"user","content":"a","seq":0}]}]`, Options{}, ErrNoFinalAssistant, "message 2: conversation does not end"},
		{"no turns", OpenAI, `{"messages":[]}`, Options{}, ErrNoFinalAssistant, "no user or assistant turns"},
		{"missing", OpenAI, `{"messagez":[]}`, Options{}, ErrMissingField, `field "messages": missing field`},
		{"not object", OpenAI, `[1,2]`, Options{}, ErrMalformedJSON, "line 1: malformed JSON"},
		{"origin", OpenAI, `{"origin":"organik","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`, Options{}, ErrUnknownOrigin, `field "origin": unknown origin "organik"`},
		{"chars", OpenAI, `{"messages":[{"role":"user","content":"źźźź"},{"role":"assistant","content":"óó"}]}`, Options{Limits: Limits{MaxChars: 5}}, ErrTooLong, "6 characters; the limit is 5"},
		{"turns", OpenAI, `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`, Options{Limits: Limits{MaxTurns: 1}}, ErrTooLong, "2 turns"},
		{"bytes", OpenAI, `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`, Options{Limits: Limits{MaxRecordBytes: 10}}, ErrTooLong, "the record holds"},
		{"bytes pllumic", PLLuMIC, `[{"conv_id":1,"messages":[]}, {"conv_id":2}]`, Options{Limits: Limits{MaxRecordBytes: 10}}, ErrTooLong, "line 1: over the length limit: the record holds 27 bytes"},
		{"utf8", OpenAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"\xc5\"}]}", Options{}, ErrInvalidUTF8, "line 1: invalid UTF-8"},
		{"pllumic comma", PLLuMIC, "[{\"conv_id\":1,\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]}\n{\"conv_id\":2}]", Options{}, ErrMalformedJSON, `line 2: malformed JSON: found '{' after an element`},
		{"pllumic open", PLLuMIC, "[\n{\"conv_id\":1, \"messages\": [", Options{}, ErrMalformedJSON, "line 2: malformed JSON: unexpected end of file inside"},
		{"pllumic unclosed", PLLuMIC, `[{"conv_id":1,"messages":[{"role":"user","content":"a","seq":0},{"role":"assistant","content":"b","seq":0}]}`, Options{}, ErrMalformedJSON, "the array is not closed"},
		{"pllumic trailing", PLLuMIC, `[] x`, Options{}, ErrMalformedJSON, "after the end of the array"},
		{"pllumic not array", PLLuMIC, `{"conv_id":1}`, Options{}, ErrMalformedJSON, "want a JSON array"},
		{"pref same", Preference, `{"chosen":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}],"rejected":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`, Options{}, ErrSamePreference, `chosen and rejected are identical`},
		{"pref explicit same", Preference, `{"prompt":[{"role":"user","content":"a"}],"chosen":[{"role":"assistant","content":"b"}],"rejected":[{"role":"assistant","content":"b"}]}`, Options{}, ErrSamePreference, `field "rejected"`},
		{"pref prompt ends assistant", Preference, `{"prompt":[{"role":"user","content":"a"},{"role":"assistant","content":"x"}],"chosen":[{"role":"assistant","content":"b"}],"rejected":[{"role":"assistant","content":"c"}]}`, Options{}, ErrRoleOrder, `field "prompt": roles out of order`},
		{"pref missing", Preference, `{"chosen":[]}`, Options{}, ErrMissingField, `field "rejected"`},
		{"triples empty", Triples, `{"prompt":"a","chosen":"","rejected":"c"}`, Options{}, ErrEmptyContent, `message 1: field "chosen"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Format = tt.format
			r, err := NewReader(strings.NewReader(tt.rec), "f", opts)
			if err != nil {
				t.Fatal(err)
			}
			var got error
			if tt.format.IsPreference() {
				for _, err := range r.Pairs(context.Background()) {
					got = err
				}
			} else {
				for _, err := range r.Samples(context.Background()) {
					got = err
				}
			}
			if !errors.Is(got, tt.want) {
				t.Fatalf("error %v; want %v", got, tt.want)
			}
			if !strings.Contains(got.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", got, tt.msg)
			}
			if a := r.Accounting(); a.Rejected != 1 || a.Read != a.Accepted+a.Rejected {
				t.Errorf("accounting %+v", a)
			}
		})
	}
}

// TestPLLuMICLenientElements quarantines a malformed element of a PLLuMIC
// array byte for byte and reads the elements around it.
func TestPLLuMICLenientElements(t *testing.T) {
	in := "[\n {\"conv_id\": 1, \"messages\": [{\"role\": \"user\", \"content\": \"a\", \"seq\": 0}, {\"role\": \"assistant\", \"content\": \"b\", \"seq\": 0}]},\n" +
		" {\"conv_id\": 2, \"messages\": [{\"role\": \"user\", \"content\": \"}]{\\\"\", \"seq\": 0}, {\"role\": \"assistant\" \"content\": \"b\"}]},\n" +
		" 17,\n" +
		" {\"conv_id\": 3, \"messages\": [{\"role\": \"user\", \"content\": \"c\", \"seq\": 0}, {\"role\": \"assistant\", \"content\": \"d\", \"seq\": 0}]}\n]\n"
	var q bytes.Buffer
	r, err := NewReader(strings.NewReader(in), "p.json", Options{Format: PLLuMIC, Policy: Lenient, Quarantine: &q})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for s, err := range r.Samples(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	if !reflect.DeepEqual(ids, []string{"1", "3"}) {
		t.Errorf("ids %v", ids)
	}
	var lines []quarantineLine
	for l := range bytes.Lines(q.Bytes()) {
		var ql quarantineLine
		json.Unmarshal(l, &ql)
		lines = append(lines, ql)
	}
	if len(lines) != 2 || lines[0].Line != 3 || lines[1].Line != 4 || lines[1].Record != "17" ||
		lines[0].Record != `{"conv_id": 2, "messages": [{"role": "user", "content": "}]{\"", "seq": 0}, {"role": "assistant" "content": "b"}]}` {
		t.Errorf("quarantine %+v", lines)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, err := range ReadSamples(ctx, "testdata/openai.jsonl", Options{}) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err %v", err)
		}
	}
}

// TestQuarantineTooLong: a record over the byte limit is skipped without
// being held, and the quarantine gives its length instead of its text.
func TestQuarantineTooLong(t *testing.T) {
	ok := `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`
	long := `{"messages":[{"role":"user","content":"` + strings.Repeat("ż", 100) + `"},{"role":"assistant","content":"b"}]}`
	var q bytes.Buffer
	r, err := NewReader(strings.NewReader(ok+"\n"+long+"\n"+ok+"\n"), "big.jsonl",
		Options{Format: OpenAI, Policy: Lenient, Quarantine: &q, Limits: Limits{MaxRecordBytes: 100}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range r.Samples(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	var ql quarantineLine
	if err := json.Unmarshal(q.Bytes(), &ql); err != nil {
		t.Fatal(err)
	}
	if n != 2 || ql.Line != 2 || ql.RecordBytes != len(long) || ql.Record != "" || !strings.Contains(ql.Reason, "over the length limit") {
		t.Errorf("%d samples, quarantine %+v", n, ql)
	}
}

// TestChunkBoundaries reads every text format one byte per Read call, so
// that records, strings and escapes straddle every buffer boundary.
func TestChunkBoundaries(t *testing.T) {
	for file, f := range map[string]Format{"pllumic.json": PLLuMIC, "openai.jsonl": OpenAI, "invalid.jsonl": OpenAI, "sharegpt.jsonl": ShareGPT} {
		whole, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		read := func(in io.Reader) ([]Sample, Accounting) {
			r, err := NewReader(in, file, Options{Format: f, Policy: Lenient})
			if err != nil {
				t.Fatal(err)
			}
			var out []Sample
			for s, err := range r.Samples(context.Background()) {
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, s)
			}
			return out, r.Accounting()
		}
		want, wantAcct := read(bytes.NewReader(whole))
		got, gotAcct := read(iotest.OneByteReader(bytes.NewReader(whole)))
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotAcct, wantAcct) || len(got) == 0 {
			t.Errorf("%s read a byte at a time: %d samples %+v; whole: %d samples %+v", file, len(got), gotAcct, len(want), wantAcct)
		}
	}
}

// TestPLLuMICLinesInStrings: a raw line break inside a string (invalid JSON,
// but it happens) still counts for the line numbers of what follows.
func TestPLLuMICLinesInStrings(t *testing.T) {
	in := "[\n{\"conv_id\": 1, \"messages\": \"a\nb\\\"\n\"},\n{\"conv_id\": 2}\n]"
	var lines []int
	r, _ := NewReader(strings.NewReader(in), "p.json", Options{Format: PLLuMIC, Policy: Lenient,
		OnReject: func(e *RecordError) { lines = append(lines, e.Line) }})
	for _, err := range r.Samples(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(lines, []int{2, 5}) {
		t.Errorf("rejected at lines %v, want [2 5]", lines)
	}
}
