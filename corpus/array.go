package corpus

import (
	"bytes"
	"fmt"
	"io"
)

// arraySource splits a JSON array into its elements without decoding them,
// so that each element's exact bytes and starting line are known (for the
// quarantine and for errors) and memory stays bounded by the largest
// element. It tracks only strings and bracket depth; json.Unmarshal checks
// each element afterwards, so a malformed element is rejected on its own
// while the array around it stays readable. A broken array structure
// (missing comma, unclosed bracket, data after the array) ends the read.
type arraySource struct {
	r       io.Reader
	buf     []byte
	pos     int
	err     error // from r, returned once buf is drained
	line    int
	max     int
	rec     []byte
	started bool
	done    bool
}

func newArraySource(r io.Reader, max int) *arraySource {
	return &arraySource{r: r, buf: make([]byte, 0, 64<<10), line: 1, max: max}
}

// fill reads more input once buf is consumed; false at the end of input.
func (s *arraySource) fill() bool {
	for s.pos >= len(s.buf) {
		if s.err != nil {
			return false
		}
		n, err := s.r.Read(s.buf[:cap(s.buf)])
		s.buf, s.pos = s.buf[:n], 0
		if err != nil {
			s.err = err
		}
	}
	return true
}

// skipSpace advances past JSON whitespace and returns the next byte without
// consuming it; ok is false at the end of input.
func (s *arraySource) skipSpace() (byte, bool) {
	for s.fill() {
		c := s.buf[s.pos]
		switch c {
		case '\n':
			s.line++
			fallthrough
		case ' ', '\t', '\r':
			s.pos++
		default:
			return c, true
		}
	}
	return 0, false
}

func (s *arraySource) syntax(line int, format string, a ...any) error {
	return &RecordError{Line: line, Row: -1, Message: -1, Err: fmt.Errorf("%w: %s", ErrMalformedJSON, fmt.Sprintf(format, a...))}
}

func (s *arraySource) ioErr() error {
	if s.err != nil && s.err != io.EOF {
		return fmt.Errorf("line %d: %w", s.line, s.err)
	}
	return nil
}

func (s *arraySource) next() (record, error) {
	if s.done {
		return record{}, io.EOF
	}
	if !s.started {
		c, ok := s.skipSpace()
		if !ok {
			if err := s.ioErr(); err != nil {
				return record{}, err
			}
			return record{}, s.syntax(s.line, "empty file; want a JSON array")
		}
		if c != '[' {
			return record{}, s.syntax(s.line, "the file starts with %q; want a JSON array", c)
		}
		s.pos++
		s.started = true
		c, ok = s.skipSpace()
		if ok && c == ']' {
			s.pos++
			return record{}, s.end()
		}
	} else {
		c, ok := s.skipSpace()
		switch {
		case !ok:
			if err := s.ioErr(); err != nil {
				return record{}, err
			}
			return record{}, s.syntax(s.line, "unexpected end of file: the array is not closed")
		case c == ']':
			s.pos++
			return record{}, s.end()
		case c != ',':
			return record{}, s.syntax(s.line, "found %q after an element; want ',' or ']'", c)
		}
		s.pos++
	}
	c, ok := s.skipSpace()
	if !ok {
		if err := s.ioErr(); err != nil {
			return record{}, err
		}
		return record{}, s.syntax(s.line, "unexpected end of file: the array is not closed")
	}
	if c == ']' || c == ',' {
		return record{}, s.syntax(s.line, "found %q where an element was expected", c)
	}
	return s.element()
}

// end checks that nothing but whitespace follows the array.
func (s *arraySource) end() error {
	s.done = true
	if c, ok := s.skipSpace(); ok {
		return s.syntax(s.line, "found %q after the end of the array", c)
	}
	if err := s.ioErr(); err != nil {
		return err
	}
	return io.EOF
}

// element reads one element starting at s.pos.
func (s *arraySource) element() (record, error) {
	start := s.line
	s.rec = s.rec[:0]
	size := 0
	depth := 0
	inStr, esc := false, false
	scalar := s.buf[s.pos] != '{' && s.buf[s.pos] != '[' && s.buf[s.pos] != '"'
	for {
		if !s.fill() {
			if scalar {
				break
			}
			if err := s.ioErr(); err != nil {
				return record{}, err
			}
			return record{}, s.syntax(start, "unexpected end of file inside the element starting here")
		}
		b := s.buf[s.pos:]
		i, end := 0, false
		for ; i < len(b); i++ {
			c := b[i]
			// A newline in a string's plain run is counted with the run.
			if c == '\n' && !(inStr && !esc) {
				s.line++
			}
			if scalar {
				if c == ',' || c == ']' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
					if c == '\n' {
						s.line--
					}
					end = true
					break
				}
				continue
			}
			if inStr {
				switch {
				case esc:
					esc = false
				case c == '\\':
					esc = true
				case c == '"':
					inStr = false
					if depth == 0 {
						i++
						end = true
					}
				default:
					// Skip the string's plain run at once: most of a
					// record's bytes are text.
					k := stringStop(b[i:])
					s.line += bytes.Count(b[i:i+k], newline)
					i += k - 1
				}
				if end {
					break
				}
				continue
			}
			switch c {
			case '"':
				inStr = true
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					i++
					end = true
				}
			}
			if end {
				break
			}
		}
		size += i
		if s.max <= 0 || size <= s.max {
			s.rec = append(s.rec, b[:i]...)
		}
		s.pos += i
		if end {
			break
		}
	}
	if s.max > 0 && size > s.max {
		return record{line: start, row: -1, tooLong: size}, nil
	}
	return record{raw: s.rec, line: start, row: -1}, nil
}

var newline = []byte{'\n'}

// stringStop returns the index in b of the first '"' or '\\', or len(b):
// two vectorised scans instead of a branch per byte.
func stringStop(b []byte) int {
	q := bytes.IndexByte(b, '"')
	if q < 0 {
		q = len(b)
	}
	if e := bytes.IndexByte(b[:q], '\\'); e >= 0 {
		return e
	}
	return q
}
