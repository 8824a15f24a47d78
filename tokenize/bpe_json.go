package tokenize

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// A tokenizer.json holds hundreds of thousands of vocabulary entries and
// merges (Gemma 3: 262,144 and 514,906 in 33 MB); encoding/json spends
// seconds on them through reflection. This scanner reads the big parts by
// hand and hands the small ones to encoding/json. It checks what it reads
// but, unlike encoding/json, does not validate values it skips.

type jsonScanner struct {
	b []byte
	i int
}

var errJSONEnd = errors.New("unexpected end of JSON")

func (s *jsonScanner) errorf(format string, a ...any) error {
	return fmt.Errorf("offset %d: %s", s.i, fmt.Sprintf(format, a...))
}

func (s *jsonScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte, 0 at the end.
func (s *jsonScanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		if s.i >= len(s.b) {
			return errJSONEnd
		}
		return s.errorf("want %q, found %q", c, s.b[s.i])
	}
	s.i++
	return nil
}

// rawString returns the bytes of the JSON string at the cursor, quotes
// included, and whether it holds escapes.
func (s *jsonScanner) rawString() ([]byte, bool, error) {
	if err := s.expect('"'); err != nil {
		return nil, false, err
	}
	start := s.i - 1
	escaped := false
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '"':
			s.i++
			return s.b[start:s.i], escaped, nil
		case '\\':
			escaped = true
			s.i += 2
		default:
			s.i++
		}
	}
	return nil, false, errJSONEnd
}

func (s *jsonScanner) str() (string, error) {
	b, err := s.strBytes()
	return string(b), err
}

// strBytes returns the content of the JSON string at the cursor; without
// escapes it is a slice of the input, saving an allocation per token.
func (s *jsonScanner) strBytes() ([]byte, error) {
	raw, escaped, err := s.rawString()
	if err != nil {
		return nil, err
	}
	inner := raw[1 : len(raw)-1]
	if !escaped && utf8.Valid(inner) {
		return inner, nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, s.errorf("%v", err)
	}
	return []byte(v), nil
}

func (s *jsonScanner) int() (int, error) {
	s.ws()
	start := s.i
	for s.i < len(s.b) && (s.b[s.i] == '-' || '0' <= s.b[s.i] && s.b[s.i] <= '9') {
		s.i++
	}
	v, err := strconv.Atoi(string(s.b[start:s.i]))
	if err != nil {
		return 0, s.errorf("want an integer: %v", err)
	}
	return v, nil
}

// skip steps over one value and returns its bytes. Brackets are only
// counted, not matched: the sections skipped here are either unused or
// parsed again by encoding/json.
func (s *jsonScanner) skip() ([]byte, error) {
	s.ws()
	start := s.i
	if s.i >= len(s.b) {
		return nil, errJSONEnd
	}
	switch s.b[s.i] {
	case '"':
		_, _, err := s.rawString()
		return s.b[start:s.i], err
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, err := s.rawString(); err != nil {
					return nil, err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return s.b[start:s.i], nil
				}
			}
			s.i++
		}
		return nil, errJSONEnd
	}
	for s.i < len(s.b) && !isDelim(s.b[s.i]) {
		s.i++
	}
	if s.i == start {
		return nil, s.errorf("missing value")
	}
	return s.b[start:s.i], nil
}

func isDelim(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r', ':':
		return true
	}
	return false
}

// object calls f for each key of the object at the cursor; f must consume
// the value.
func (s *jsonScanner) object(f func(key string) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		k, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := f(k); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		case 0:
			return errJSONEnd
		default:
			return s.errorf("want ',' or '}', found %q", s.b[s.i])
		}
	}
}

// array calls f for each element of the array at the cursor.
func (s *jsonScanner) array(f func(i int) error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for n := 0; ; n++ {
		if err := f(n); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		case 0:
			return errJSONEnd
		default:
			return s.errorf("want ',' or ']', found %q", s.b[s.i])
		}
	}
}

// topLevel returns the raw value of each key of the object in b.
func topLevel(b []byte) (map[string]json.RawMessage, error) {
	s := &jsonScanner{b: b}
	out := map[string]json.RawMessage{}
	err := s.object(func(k string) error {
		v, err := s.skip()
		out[k] = v
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.peek() != 0 {
		return nil, s.errorf("data after the top-level object")
	}
	return out, nil
}

// parseVocab reads {"token": id, ...}.
func parseVocab(raw []byte) (map[string]int, error) {
	s := &jsonScanner{b: raw}
	// A rough count of entries sizes the map once.
	v := make(map[string]int, bytes.Count(raw, []byte{':'}))
	err := s.object(func(k string) error {
		id, err := s.int()
		if err != nil {
			return fmt.Errorf("token %q: %w", k, err)
		}
		v[k] = id
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vocab: %w", err)
	}
	return v, nil
}

// parseMerges reads merges in either form: ["a b", ...] or [["a", "b"], ...].
// The tokens are slices of raw where they hold no escapes.
func parseMerges(raw []byte) ([][2][]byte, error) {
	s := &jsonScanner{b: raw}
	var out [][2][]byte
	err := s.array(func(n int) error {
		switch s.peek() {
		case '[':
			var pair [2][]byte
			count := 0
			err := s.array(func(k int) error {
				if k > 1 {
					return fmt.Errorf("more than 2 tokens")
				}
				var err error
				pair[k], err = s.strBytes()
				count++
				return err
			})
			if err == nil && count != 2 {
				err = fmt.Errorf("want 2 tokens, got %d", count)
			}
			if err != nil {
				return fmt.Errorf("merge %d: %w", n, err)
			}
			out = append(out, pair)
		case '"':
			str, err := s.strBytes()
			if err != nil {
				return fmt.Errorf("merge %d: %w", n, err)
			}
			a, b, ok := bytes.Cut(str, []byte{' '})
			if !ok || bytes.IndexByte(b, ' ') >= 0 {
				return fmt.Errorf("merge %d: %q is not two tokens separated by one space", n, str)
			}
			out = append(out, [2][]byte{a, b})
		default:
			return fmt.Errorf("merge %d: %w", n, s.errorf("want a string or a pair"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("merges: %w", err)
	}
	return out, nil
}
