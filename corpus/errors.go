package corpus

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors a *RecordError wraps. Test for them with errors.Is.
var (
	ErrMalformedJSON    = errors.New("malformed JSON")
	ErrInvalidUTF8      = errors.New("invalid UTF-8")
	ErrMissingField     = errors.New("missing field")
	ErrUnknownRole      = errors.New("unknown role")
	ErrUnknownOrigin    = errors.New("unknown origin")
	ErrEmptyContent     = errors.New("empty content")
	ErrRoleOrder        = errors.New("roles out of order")
	ErrSystemNotFirst   = errors.New("system message not first")
	ErrNoFinalAssistant = errors.New("conversation does not end with an assistant turn")
	ErrTooLong          = errors.New("over the length limit")
	ErrSamePreference   = errors.New("chosen and rejected are identical")
	ErrNotRepresentable = errors.New("not representable in this format")
)

// RecordError is a problem with one record of a file. Line is the 1-based
// line where the record starts in a text file (JSONL, PLLuMIC); Row is the
// 0-based row of a Parquet file, -1 for text files; Offset is the record's
// byte offset in the file where the reader knows it (raw text, see
// TextReader), named in the message when there is no line. Message, when not
// negative, is the 1-based index of the offending message in the record's
// message list as the file holds it (a system message counts); Field names
// the offending field when there is one.
type RecordError struct {
	File    string
	Line    int
	Row     int64
	Message int
	Field   string
	Offset  int64
	Err     error // a sentinel above, possibly wrapped with details
}

func (e *RecordError) Error() string {
	var b strings.Builder
	b.WriteString("corpus: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	switch {
	case e.Row >= 0:
		fmt.Fprintf(&b, "row %d: ", e.Row)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	case e.Offset > 0:
		fmt.Fprintf(&b, "byte %d: ", e.Offset)
	}
	if e.Message > 0 {
		fmt.Fprintf(&b, "message %d: ", e.Message)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *RecordError) Unwrap() error { return e.Err }

// Reason is the short cause without the position: the text the quarantine
// file and the accounting use.
func (e *RecordError) Reason() string {
	var b strings.Builder
	if e.Message > 0 {
		fmt.Fprintf(&b, "message %d: ", e.Message)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// kind is the sentinel the error wraps, used to key the accounting.
func (e *RecordError) kind() string {
	for _, s := range []error{ErrMalformedJSON, ErrInvalidUTF8, ErrMissingField, ErrUnknownRole,
		ErrUnknownOrigin, ErrEmptyContent, ErrRoleOrder, ErrSystemNotFirst, ErrNoFinalAssistant, ErrTooLong,
		ErrSamePreference, ErrNotRepresentable} {
		if errors.Is(e.Err, s) {
			return s.Error()
		}
	}
	return "other"
}
