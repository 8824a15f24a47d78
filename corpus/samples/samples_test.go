package samples_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/corpus/samples"
)

// pllumicMessage and pllumicConv mirror PLLuMIC's released JSON. The test
// decodes with DisallowUnknownFields so that a stray or misspelt key fails.
type pllumicMessage struct {
	Role     string   `json:"role"`
	Content  *string  `json:"content"`
	Seq      *int     `json:"seq"`
	Language string   `json:"language"`
	Type     string   `json:"type"`
	Subtype  string   `json:"subtype,omitempty"`
	Source   []string `json:"source"`
}

type pllumicConv struct {
	ConvID   string           `json:"conv_id"`
	Messages []pllumicMessage `json:"messages"`
}

func readFile(t *testing.T, name string) []pllumicConv {
	t.Helper()
	f, err := samples.FS().Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(b) {
		t.Fatalf("%s: invalid UTF-8", name)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var convs []pllumicConv
	if err := dec.Decode(&convs); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return convs
}

// checkConv returns the problems of one conversation: the PLLuMIC shape, with
// a system message at seq -1 first and user/assistant pairs numbered from 0.
func checkConv(c pllumicConv) []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.ConvID == "" {
		bad("empty conv_id")
	}
	if len(c.Messages) < 3 {
		return append(errs, fmt.Sprintf("%d messages; want a system message and at least one user/assistant pair", len(c.Messages)))
	}
	if (len(c.Messages)-1)%2 != 0 {
		bad("%d messages after the system message; want user/assistant pairs", len(c.Messages)-1)
	}
	typ := c.Messages[0].Type
	for i, m := range c.Messages {
		wantRole, wantSeq := "system", -1
		if i > 0 {
			wantRole, wantSeq = "user", (i-1)/2
			if i%2 == 0 {
				wantRole = "assistant"
			}
		}
		if m.Role != wantRole {
			bad("message %d has role %q; want %q", i, m.Role, wantRole)
		}
		if m.Seq == nil || *m.Seq != wantSeq {
			bad("message %d: seq %v; want %d", i, m.Seq, wantSeq)
		}
		if m.Content == nil {
			bad("message %d has no content field", i)
		} else if i > 0 && strings.TrimSpace(*m.Content) == "" {
			bad("message %d (%s) has empty content", i, m.Role)
		}
		if m.Language != "pol" {
			bad("message %d: language %q; want \"pol\"", i, m.Language)
		}
		if m.Type == "" || m.Type != typ {
			bad("message %d: type %q; want %q, the same as the system message", i, m.Type, typ)
		}
		if len(m.Source) == 0 || m.Source[0] == "" {
			bad("message %d has no source", i)
		}
	}
	return errs
}

// TestCheckConv shows that checkConv catches each shape error it claims to,
// so that TestSampleFiles passing means something.
func TestCheckConv(t *testing.T) {
	msg := func(role string, seq int, content string) pllumicMessage {
		return pllumicMessage{Role: role, Content: &content, Seq: &seq, Language: "pol", Type: "Dialog", Source: []string{"x"}}
	}
	ok := func() []pllumicMessage {
		return []pllumicMessage{msg("system", -1, ""), msg("user", 0, "Pytanie?"), msg("assistant", 0, "Odpowiedź.")}
	}
	tests := []struct {
		name  string
		edit  func(m []pllumicMessage) []pllumicMessage
		wantE string
	}{
		{"valid", func(m []pllumicMessage) []pllumicMessage { return m }, ""},
		{"no system", func(m []pllumicMessage) []pllumicMessage { return append(m[1:], msg("user", 1, "a")) }, "role"},
		{"swapped roles", func(m []pllumicMessage) []pllumicMessage { m[1], m[2] = m[2], m[1]; return m }, "role"},
		{"bad seq", func(m []pllumicMessage) []pllumicMessage { m[2] = msg("assistant", 1, "a"); return m }, "seq"},
		{"empty answer", func(m []pllumicMessage) []pllumicMessage { m[2] = msg("assistant", 0, " \n"); return m }, "empty content"},
		{"odd turns", func(m []pllumicMessage) []pllumicMessage { return append(m, msg("user", 1, "a")) }, "pairs"},
		{"mixed type", func(m []pllumicMessage) []pllumicMessage { m[2].Type = "RAG"; return m }, "type"},
		{"no source", func(m []pllumicMessage) []pllumicMessage { m[1].Source = nil; return m }, "source"},
		{"language", func(m []pllumicMessage) []pllumicMessage { m[1].Language = "en"; return m }, "language"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := checkConv(pllumicConv{ConvID: "t", Messages: tt.edit(ok())})
			if tt.wantE == "" {
				if len(errs) != 0 {
					t.Fatalf("got %v; want no problems", errs)
				}
				return
			}
			if !strings.Contains(strings.Join(errs, "; "), tt.wantE) {
				t.Fatalf("got %v; want a problem mentioning %q", errs, tt.wantE)
			}
		})
	}
}

func TestSampleFiles(t *testing.T) {
	total, multi := 0, 0
	ids := map[string]string{}
	wantMin := map[string]int{samples.Organic: 140, samples.Converted: 110, samples.Synthetic: 35}
	for _, name := range []string{samples.Organic, samples.Converted, samples.Synthetic} {
		convs := readFile(t, name)
		if len(convs) < wantMin[name] {
			t.Errorf("%s: %d samples; want at least %d", name, len(convs), wantMin[name])
		}
		for _, c := range convs {
			for _, e := range checkConv(c) {
				t.Errorf("%s: %s: %s", name, c.ConvID, e)
			}
			if prev, ok := ids[c.ConvID]; ok {
				t.Errorf("%s: conv_id %q already used in %s", name, c.ConvID, prev)
			}
			ids[c.ConvID] = name
			if len(c.Messages) >= 5 {
				multi++
			}
		}
		total += len(convs)
	}
	if total < 300 {
		t.Errorf("%d instruction samples in total; want at least 300", total)
	}
	if multi < 40 {
		t.Errorf("%d multi-turn samples; want at least 40", multi)
	}
}

// TestConvertedSources checks that converted samples name their source
// datasets with uneven counts, which per-source caps in mixing rely on.
func TestConvertedSources(t *testing.T) {
	counts := map[string]int{}
	for _, c := range readFile(t, samples.Converted) {
		counts[c.Messages[0].Source[0]]++
	}
	if len(counts) < 6 {
		t.Errorf("%d source datasets; want at least 6: %v", len(counts), counts)
	}
	distinct := map[int]bool{}
	for _, n := range counts {
		distinct[n] = true
	}
	if len(distinct) < 3 {
		t.Errorf("per-source counts too even: %v", counts)
	}
}

// TestPolishConventions holds the samples meant for training to the
// conventions the style linter checks; only those marked "calque-example"
// may break them.
func TestPolishConventions(t *testing.T) {
	calques := 0
	for _, name := range []string{samples.Organic, samples.Converted, samples.Synthetic} {
		for _, c := range readFile(t, name) {
			if c.Messages[0].Subtype == "calque-example" {
				calques++
				continue
			}
			for i, m := range c.Messages {
				for _, bad := range []string{"\"", "\u201c", "Z poważaniem,", "Pozdrawiam,"} {
					if strings.Contains(*m.Content, bad) {
						t.Errorf("%s: %s: message %d contains %q", name, c.ConvID, i, bad)
					}
				}
			}
		}
	}
	if calques < 3 {
		t.Errorf("%d calque examples; want at least 3 for the style linter", calques)
	}
}

func TestFSFiles(t *testing.T) {
	for _, name := range []string{samples.Organic, samples.Converted, samples.Synthetic, samples.Preferences, samples.Pretrain} {
		if _, err := fs.Stat(samples.FS(), name); err != nil {
			t.Error(err)
		}
	}
}

// TestCorpusReader reads every instruction file with the corpus package's
// strict PLLuMIC reader, as the quickstart does, and checks that nothing is
// rejected and that the origin, type and source survive.
func TestCorpusReader(t *testing.T) {
	for _, file := range samples.InstructionFiles() {
		want := len(readFile(t, file.Name))
		f, err := samples.FS().Open(file.Name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := corpus.NewReader(f, file.Name, corpus.Options{Format: corpus.PLLuMIC, Origin: file.Origin})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for s, err := range r.Samples(context.Background()) {
			if err != nil {
				t.Fatalf("%s: %v", file.Name, err)
			}
			n++
			if s.Origin != file.Origin || s.Type == "" || len(s.Sources) == 0 || s.Language != "pol" {
				t.Errorf("%s: %s: origin %q, type %q, sources %v, language %q", file.Name, s.ID, s.Origin, s.Type, s.Sources, s.Language)
			}
		}
		if err := r.Close(); err != nil {
			t.Error(err)
		}
		if acct := r.Accounting(); n != want || acct.Rejected != 0 || acct.Read != int64(want) {
			t.Errorf("%s: read %d samples, accounting %+v; want %d accepted, none rejected", file.Name, n, acct, want)
		}
	}
}

func ExampleInstructionFiles() {
	for _, file := range samples.InstructionFiles() {
		f, err := samples.FS().Open(file.Name)
		if err != nil {
			panic(err)
		}
		r, err := corpus.NewReader(f, file.Name, corpus.Options{Origin: file.Origin})
		if err != nil {
			panic(err)
		}
		for s, err := range r.Samples(context.Background()) {
			if err != nil {
				panic(err)
			}
			fmt.Println(s.ID, s.Origin, s.Type)
			break
		}
		r.Close()
	}
	// Output:
	// org-0001 organic Pisanie listów
	// conv-0001 converted Ekstrakcja informacji
	// syn-0001 synthetic Twórcze pisanie
}
