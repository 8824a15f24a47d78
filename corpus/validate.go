package corpus

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits bounds what a record may hold. The zero value of a field means no
// limit; DefaultLimits bounds only the raw record size, which is what keeps a
// reader's memory constant on hostile input.
type Limits struct {
	// MaxRecordBytes rejects a raw record (a JSONL line, a PLLuMIC array
	// element) longer than this many bytes without decoding it.
	MaxRecordBytes int
	// MaxChars rejects a sample whose text (system prompt and all turns)
	// holds more characters (runes) than this.
	MaxChars int
	// MaxTurns rejects a sample with more user/assistant messages than this.
	MaxTurns int
}

// DefaultLimits returns the limits readers use when Options.Limits is zero:
// records up to 16 MiB, no limit on characters or turns.
func DefaultLimits() Limits { return Limits{MaxRecordBytes: 16 << 20} }

// Validate checks a sample: valid UTF-8, known roles, the system prompt only
// first (Sample.System), user and assistant turns alternating from a user
// turn, no empty turn, a final assistant turn, and the limits. An empty
// system prompt is allowed (PLLuMIC holds many). The error is a *RecordError
// whose Message is the 1-based index in Conversation().
func Validate(s *Sample, limits Limits) error {
	base := 1
	if s.System != "" {
		base = 2
	}
	if err := validateSample(s, base, limits, true); err != nil {
		return err
	}
	return nil
}

// validateSample checks s; base is the file's 1-based index of s.Messages[0]
// so that errors name the message as the file numbers it. Readers check
// UTF-8 on the raw record and pass checkUTF8 false.
func validateSample(s *Sample, base int, limits Limits, checkUTF8 bool) *RecordError {
	if checkUTF8 && !utf8.ValidString(s.System) {
		return &RecordError{Row: -1, Message: base - 1, Err: fmt.Errorf("%w in the system prompt", ErrInvalidUTF8)}
	}
	if e := validateTurns(s.Messages, base, RoleUser, true, checkUTF8); e != nil {
		return e
	}
	if limits.MaxTurns > 0 && len(s.Messages) > limits.MaxTurns {
		return &RecordError{Row: -1, Message: -1, Err: fmt.Errorf("%w: %d turns; the limit is %d", ErrTooLong, len(s.Messages), limits.MaxTurns)}
	}
	if limits.MaxChars > 0 {
		if n := sampleChars(s); n > limits.MaxChars {
			return &RecordError{Row: -1, Message: -1, Err: fmt.Errorf("%w: %d characters; the limit is %d", ErrTooLong, n, limits.MaxChars)}
		}
	}
	return nil
}

// validateTurns checks that msgs alternate starting with first and, when
// final is set, end with an assistant turn.
func validateTurns(msgs []Message, base int, first Role, final, checkUTF8 bool) *RecordError {
	if len(msgs) == 0 {
		return &RecordError{Row: -1, Message: -1, Err: fmt.Errorf("%w: no user or assistant turns", ErrNoFinalAssistant)}
	}
	for i, m := range msgs {
		pos := base + i
		switch m.Role {
		case RoleUser, RoleAssistant:
		case RoleSystem:
			return &RecordError{Row: -1, Message: pos, Err: fmt.Errorf("%w: a system message may only open the conversation", ErrSystemNotFirst)}
		default:
			return &RecordError{Row: -1, Message: pos, Err: fmt.Errorf("%w %q; want system, user or assistant", ErrUnknownRole, string(m.Role))}
		}
		want := first
		if i%2 == 1 {
			want = other(first)
		}
		if m.Role != want {
			return &RecordError{Row: -1, Message: pos, Err: fmt.Errorf("%w: role %s where %s was expected", ErrRoleOrder, m.Role, want)}
		}
		if checkUTF8 && !utf8.ValidString(m.Content) {
			return &RecordError{Row: -1, Message: pos, Err: ErrInvalidUTF8}
		}
		if strings.TrimSpace(m.Content) == "" {
			return &RecordError{Row: -1, Message: pos, Err: fmt.Errorf("%w: the %s turn has no text", ErrEmptyContent, m.Role)}
		}
	}
	if final && msgs[len(msgs)-1].Role != RoleAssistant {
		return &RecordError{Row: -1, Message: base + len(msgs) - 1, Err: fmt.Errorf("%w: the last turn is %s", ErrNoFinalAssistant, msgs[len(msgs)-1].Role)}
	}
	return nil
}

func other(r Role) Role {
	if r == RoleUser {
		return RoleAssistant
	}
	return RoleUser
}

func sampleChars(s *Sample) int {
	n := utf8.RuneCountInString(s.System)
	for _, m := range s.Messages {
		n += utf8.RuneCountInString(m.Content)
	}
	return n
}

// ValidatePair checks a preference pair: the prompt is an optional system
// message then turns from a user turn ending with a user turn; chosen and
// rejected each continue it from an assistant turn and end with one; they
// differ. Field in the error names prompt, chosen or rejected.
func ValidatePair(p *PreferencePair, limits Limits) error {
	if e := validatePair(p, limits); e != nil {
		return e
	}
	return nil
}

func validatePair(p *PreferencePair, limits Limits) *RecordError {
	prompt := p.Prompt
	base := 1
	if len(prompt) > 0 && prompt[0].Role == RoleSystem {
		if !utf8.ValidString(prompt[0].Content) {
			return &RecordError{Row: -1, Message: 1, Field: "prompt", Err: ErrInvalidUTF8}
		}
		prompt, base = prompt[1:], 2
	}
	if len(prompt) == 0 {
		return &RecordError{Row: -1, Message: -1, Field: "prompt", Err: fmt.Errorf("%w: the prompt has no user turn", ErrRoleOrder)}
	}
	if e := validateTurns(prompt, base, RoleUser, false, true); e != nil {
		e.Field = "prompt"
		return e
	}
	if last := prompt[len(prompt)-1]; last.Role != RoleUser {
		return &RecordError{Row: -1, Message: base + len(prompt) - 1, Field: "prompt", Err: fmt.Errorf("%w: the prompt ends with %s; want user", ErrRoleOrder, last.Role)}
	}
	for _, side := range []struct {
		name string
		msgs []Message
	}{{"chosen", p.Chosen}, {"rejected", p.Rejected}} {
		if e := validateTurns(side.msgs, 1, RoleAssistant, true, true); e != nil {
			e.Field = side.name
			return e
		}
	}
	if slices.Equal(p.Chosen, p.Rejected) {
		return &RecordError{Row: -1, Message: -1, Field: "rejected", Err: ErrSamePreference}
	}
	if limits.MaxChars > 0 {
		n := 0
		for _, part := range [][]Message{p.Prompt, p.Chosen, p.Rejected} {
			for _, m := range part {
				n += utf8.RuneCountInString(m.Content)
			}
		}
		if n > limits.MaxChars {
			return &RecordError{Row: -1, Message: -1, Err: fmt.Errorf("%w: %d characters; the limit is %d", ErrTooLong, n, limits.MaxChars)}
		}
	}
	return nil
}
