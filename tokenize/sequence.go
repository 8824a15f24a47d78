package tokenize

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"unicode"

	"github.com/pltune/pltune/corpus"
)

// IgnoreIndex marks a label that takes no part in the loss, as in PyTorch's
// cross_entropy(ignore_index=-100) and Hugging Face's labels.
const IgnoreIndex = -100

// Sequence is one training example: token ids and, position for position,
// the labels. Labels are not shifted: Labels[i] is the target of IDs[i]'s own
// position and the model shifts them, as Hugging Face models do; a label of
// IgnoreIndex is not trained.
type Sequence struct {
	IDs    []int
	Labels []int
}

// Len is the number of tokens.
func (s Sequence) Len() int { return len(s.IDs) }

// Trainable counts the labels that take part in the loss.
func (s Sequence) Trainable() int {
	n := 0
	for _, l := range s.Labels {
		if l != IgnoreIndex {
			n++
		}
	}
	return n
}

// ErrTooLong is returned for a sample longer than the maximum length under
// DropTooLong: the caller skips it and may count it.
var ErrTooLong = errors.New("tokenize: sequence longer than the maximum length")

// ErrNoTrainableTokens is returned for a sample that would train nothing:
// no assistant turn, only empty ones, or all of them cut off by truncation.
var ErrNoTrainableTokens = errors.New("tokenize: sample has no trainable token")

// LengthError is returned for a sample longer than the maximum length under
// ErrorTooLong. It does not match ErrTooLong, so a loop that skips dropped
// samples stops on it.
type LengthError struct {
	Len, MaxLen int
}

func (e *LengthError) Error() string {
	return fmt.Sprintf("tokenize: %d tokens exceed the maximum length %d; raise MaxLen or choose DropTooLong or TruncateTooLong", e.Len, e.MaxLen)
}

// Truncation is what to do with a sample longer than the maximum length.
type Truncation int

const (
	// DropTooLong skips the sample: the builder returns ErrTooLong.
	DropTooLong Truncation = iota
	// TruncateTooLong keeps the first MaxLen tokens (an error follows when
	// no trainable token is left).
	TruncateTooLong
	// ErrorTooLong fails with a *LengthError.
	ErrorTooLong
)

// DefaultMaxLen is the maximum sequence length when SFTOptions leaves it 0.
const DefaultMaxLen = 16384

// SFTOptions configure an SFTBuilder. The zero value is usable: the
// tokenizer's own chat template, 16,384 tokens at most, too-long samples
// dropped, every assistant turn trained.
type SFTOptions struct {
	// MaxLen is the maximum number of tokens of a sequence; 0 means
	// DefaultMaxLen.
	MaxLen int
	// Truncation says what happens to longer samples.
	Truncation Truncation
	// Template renders the conversations; nil means the tokenizer's
	// (Tokenizer.ChatTemplate).
	Template *ChatTemplate
	// LastTurnOnly trains only the final assistant turn of a multi-turn
	// sample instead of all of them.
	LastTurnOnly bool
	// Vars are extra template variables, as in RenderOptions.
	Vars map[string]any
}

// encoder is what the builders need of a tokenizer; tests substitute a
// small one.
type encoder interface {
	Encode(text string, addSpecialTokens bool) []int
}

// SFTBuilder turns conversations into supervised fine-tuning sequences in
// which only what the assistant says is trained: each assistant turn from the
// end of its generation prompt through its end-of-turn token(s).
//
// The text is the chat template's rendering of the whole conversation,
// encoded without the tokenizer's special tokens (the template writes BOS
// itself, as apply_chat_template(tokenize=True) does, so there is never a
// second one). The trained spans are found by rendering, not by searching
// for strings: for assistant turn i the builder renders the messages before
// it with the generation prompt (where the answer starts), the conversation
// with turn i's content replaced by a one-character stand-in (where the
// content lies, even when the template adds text such as Qwen3's empty think
// block around it), and the conversation up to turn i (what closes the turn,
// e.g. "<|eot_id|>", trailing whitespace left out). Should the generation
// prompt not be how the whole conversation opens that turn, the span starts
// at the content. Character positions map
// to tokens by encoding the rendered prefix and comparing with the full
// encoding, so a token that straddles a boundary is trained.
//
// An SFTBuilder is safe for concurrent use.
type SFTBuilder struct {
	enc  encoder
	tmpl *ChatTemplate
	opts SFTOptions
}

// NewSFTBuilder returns a builder for tok.
func NewSFTBuilder(tok *Tokenizer, opts SFTOptions) (*SFTBuilder, error) {
	if opts.Template == nil {
		t, err := tok.ChatTemplate()
		if err != nil {
			return nil, err
		}
		opts.Template = t
	}
	return newSFTBuilder(tok, opts)
}

func newSFTBuilder(enc encoder, opts SFTOptions) (*SFTBuilder, error) {
	if opts.MaxLen == 0 {
		opts.MaxLen = DefaultMaxLen
	}
	if opts.MaxLen < 0 {
		return nil, fmt.Errorf("tokenize: MaxLen %d is negative", opts.MaxLen)
	}
	if opts.Truncation < DropTooLong || opts.Truncation > ErrorTooLong {
		return nil, fmt.Errorf("tokenize: unknown truncation policy %d", opts.Truncation)
	}
	if opts.Template == nil {
		return nil, errors.New("tokenize: SFTOptions.Template is nil")
	}
	return &SFTBuilder{enc: enc, tmpl: opts.Template, opts: opts}, nil
}

// Build returns the training sequence of sample s. Errors name the sample.
func (b *SFTBuilder) Build(s *corpus.Sample) (Sequence, error) {
	seq, err := b.BuildMessages(s.Conversation())
	if err != nil {
		return Sequence{}, fmt.Errorf("sample %q: %w", s.ID, err)
	}
	return seq, nil
}

// BuildMessages returns the training sequence of a conversation (system
// prompt first, if any).
func (b *SFTBuilder) BuildMessages(msgs []corpus.Message) (Sequence, error) {
	first := 0
	if b.opts.LastTurnOnly {
		first = lastAssistant(msgs)
	}
	seq, err := b.build(msgs, first)
	if err != nil {
		return Sequence{}, err
	}
	return b.fit(seq)
}

func lastAssistant(msgs []corpus.Message) int {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == corpus.RoleAssistant {
			return i
		}
	}
	return len(msgs)
}

// fit applies the length policy.
func (b *SFTBuilder) fit(seq Sequence) (Sequence, error) {
	if seq.Len() <= b.opts.MaxLen {
		return seq, nil
	}
	switch b.opts.Truncation {
	case DropTooLong:
		return Sequence{}, fmt.Errorf("%w (%d > %d)", ErrTooLong, seq.Len(), b.opts.MaxLen)
	case ErrorTooLong:
		return Sequence{}, &LengthError{Len: seq.Len(), MaxLen: b.opts.MaxLen}
	}
	seq = Sequence{IDs: seq.IDs[:b.opts.MaxLen], Labels: seq.Labels[:b.opts.MaxLen]}
	if seq.Trainable() == 0 {
		return Sequence{}, fmt.Errorf("%w after truncation to %d tokens", ErrNoTrainableTokens, b.opts.MaxLen)
	}
	return seq, nil
}

func (b *SFTBuilder) render(msgs []corpus.Message, gen bool) (string, error) {
	return b.tmpl.RenderWith(msgs, RenderOptions{AddGenerationPrompt: gen, Vars: b.opts.Vars})
}

// build renders and encodes msgs and labels the assistant turns at index
// first or later.
func (b *SFTBuilder) build(msgs []corpus.Message, first int) (Sequence, error) {
	full, err := b.render(msgs, false)
	if err != nil {
		return Sequence{}, err
	}
	ids := b.enc.Encode(full, false)
	labels := make([]int, len(ids))
	for i := range labels {
		labels[i] = IgnoreIndex
	}
	for i := first; i < len(msgs); i++ {
		if msgs[i].Role != corpus.RoleAssistant {
			continue
		}
		start, end, err := b.assistantSpan(msgs, i, full)
		if err != nil {
			return Sequence{}, fmt.Errorf("assistant message %d: %w", i, err)
		}
		if start == end {
			continue
		}
		ts := tokenBoundary(b.enc.Encode(full[:start], false), ids, false)
		te := tokenBoundary(b.enc.Encode(full[:end], false), ids, true)
		copy(labels[ts:te], ids[ts:te])
	}
	seq := Sequence{IDs: ids, Labels: labels}
	if seq.Trainable() == 0 {
		return Sequence{}, ErrNoTrainableTokens
	}
	return seq, nil
}

// assistantSpan returns the byte range of full, the rendering of msgs, that
// assistant message i trains: from the end of its generation prompt to the
// end of its end-of-turn text.
func (b *SFTBuilder) assistantSpan(msgs []corpus.Message, i int, full string) (start, end int, err error) {
	alt := make([]corpus.Message, len(msgs))
	copy(alt, msgs)
	alt[i].Content = standIn(msgs[i].Content)
	altFull, err := b.render(alt, false)
	if err != nil {
		return 0, 0, err
	}
	if altFull == full {
		return 0, 0, errors.New("the chat template does not render the assistant's content")
	}
	contentStart, contentEnd := diffSpan(full, altFull)

	prompt, err := b.render(msgs[:i], true)
	if err != nil {
		return 0, 0, err
	}
	start = contentStart
	if strings.HasPrefix(full, prompt) && len(prompt) <= contentStart {
		start = len(prompt)
	}

	turn, err := b.render(msgs[:i+1], false)
	if err != nil {
		return 0, 0, err
	}
	altTurn, err := b.render(alt[:i+1], false)
	if err != nil {
		return 0, 0, err
	}
	_, turnContentEnd := diffSpan(turn, altTurn)
	closing := strings.TrimRightFunc(turn[turnContentEnd:], unicode.IsSpace)
	if !strings.HasPrefix(full[contentEnd:], closing) {
		return 0, 0, fmt.Errorf("the chat template closes the turn with %q when it is last but not inside the whole conversation", closing)
	}
	end = contentEnd + len(closing)
	if strings.TrimSpace(msgs[i].Content) == "" && contentStart == contentEnd {
		// An empty answer trains nothing, not even the closing token: a
		// model should not learn to end a turn without saying anything.
		return start, start, nil
	}
	return start, end, nil
}

// standIn returns a one-character content that differs from every character
// of content, so the rendering with it differs exactly where content was.
func standIn(content string) string {
	for r := rune(1); ; r++ {
		if !strings.ContainsRune(content, r) && !unicode.IsSpace(r) {
			return string(r)
		}
	}
}

// diffSpan returns the range of a that differs from b: after their common
// prefix and before their common suffix (the suffix never overlaps the
// prefix).
func diffSpan(a, b string) (start, end int) {
	n := min(len(a), len(b))
	for start < n && a[start] == b[start] {
		start++
	}
	s := 0
	for s < n-start && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	return start, len(a) - s
}

// tokenBoundary maps the end of a text prefix to a token index of ids, the
// encoding of the whole text: the number of leading tokens the prefix's own
// encoding shares with it. When the prefix's last tokens merge differently
// in the whole text, the boundary falls before the merged token, or after
// it when inclusive is set (the token holds text of both sides).
func tokenBoundary(prefix, ids []int, inclusive bool) int {
	k := 0
	for k < len(prefix) && k < len(ids) && prefix[k] == ids[k] {
		k++
	}
	if inclusive && k < len(prefix) && k < len(ids) {
		k++
	}
	return k
}

// SFTStats counts what BuildAll made of a corpus.
type SFTStats struct {
	// Samples is the number of samples read, Sequences the number built.
	Samples, Sequences int
	// TooLong counts the samples dropped under DropTooLong.
	TooLong int
	// Tokens and Trained count the tokens of the built sequences and those
	// of them that are trained.
	Tokens, Trained int
}

// BuildAll builds the sequences of every sample in order. Samples longer
// than MaxLen under DropTooLong are skipped and counted; any other error
// (a read error, a template error, a sample with nothing to train) stops it
// and is returned with the stats so far. Cancelling ctx stops it too.
func (b *SFTBuilder) BuildAll(ctx context.Context, samples iter.Seq2[corpus.Sample, error]) ([]Sequence, SFTStats, error) {
	var out []Sequence
	var st SFTStats
	for s, err := range samples {
		if err != nil {
			return out, st, err
		}
		if err := ctx.Err(); err != nil {
			return out, st, err
		}
		st.Samples++
		seq, err := b.Build(&s)
		if errors.Is(err, ErrTooLong) {
			st.TooLong++
			continue
		}
		if err != nil {
			return out, st, err
		}
		st.Sequences++
		st.Tokens += seq.Len()
		st.Trained += seq.Trainable()
		out = append(out, seq)
	}
	return out, st, nil
}

// PreferenceExample is a preference pair as two sequences that share their
// first PromptLen tokens (the rendered prompt); the labels train the
// response of each, its end-of-turn token(s) included.
type PreferenceExample struct {
	Chosen, Rejected Sequence
	PromptLen        int
}

// BuildPreference returns the sequences of a preference pair: the prompt
// conversation followed by the chosen and by the rejected responses, with
// only the responses' assistant turns trained. The length policy applies to
// each sequence; truncation keeps both as long as neither loses all its
// response.
func (b *SFTBuilder) BuildPreference(p *corpus.PreferencePair) (PreferenceExample, error) {
	ex, err := b.buildPreference(p)
	if err != nil {
		return PreferenceExample{}, fmt.Errorf("preference pair %q: %w", p.ID, err)
	}
	return ex, nil
}

func (b *SFTBuilder) buildPreference(p *corpus.PreferencePair) (PreferenceExample, error) {
	if len(p.Chosen) == 0 || len(p.Rejected) == 0 {
		return PreferenceExample{}, errors.New("chosen or rejected response is empty")
	}
	side := func(name string, resp []corpus.Message) (Sequence, error) {
		msgs := append(append([]corpus.Message(nil), p.Prompt...), resp...)
		seq, err := b.build(msgs, len(p.Prompt))
		if err != nil {
			return Sequence{}, fmt.Errorf("%s: %w", name, err)
		}
		seq, err = b.fit(seq)
		if err != nil {
			return Sequence{}, fmt.Errorf("%s: %w", name, err)
		}
		return seq, nil
	}
	chosen, err := side("chosen", p.Chosen)
	if err != nil {
		return PreferenceExample{}, err
	}
	rejected, err := side("rejected", p.Rejected)
	if err != nil {
		return PreferenceExample{}, err
	}
	promptLen := min(firstLabel(chosen), firstLabel(rejected))
	for i := range promptLen {
		if chosen.IDs[i] != rejected.IDs[i] {
			return PreferenceExample{}, fmt.Errorf("chosen and rejected differ at token %d, inside the prompt", i)
		}
	}
	return PreferenceExample{Chosen: chosen, Rejected: rejected, PromptLen: promptLen}, nil
}

func firstLabel(s Sequence) int {
	for i, l := range s.Labels {
		if l != IgnoreIndex {
			return i
		}
	}
	return len(s.Labels)
}
