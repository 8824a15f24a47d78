package corpus

import (
	"unicode/utf16"
	"unicode/utf8"
)

// fastOpenAI decodes the common shape of an OpenAI-messages record in one
// pass: an object whose keys are exactly "messages" (objects with exactly
// "role" and "content" strings) and the string metadata fields, "id" (any
// value) and "sources" (strings). It returns false for anything else (a
// syntax error, null, other keys or key spellings, "meta"), and the caller
// decodes the record the general way, whose result and errors stand; when
// it returns true the result is what encoding/json gives (FuzzFastOpenAI
// checks it). It checks that the strings are UTF-8 as it goes, so a record
// it accepts is valid UTF-8 throughout (JSON outside strings is ASCII) and
// the reader need not check it again; on bytes that are not UTF-8 it
// returns false.
func fastOpenAI(b []byte) (openAIRecord, bool) {
	var r openAIRecord
	p := fastParser{b: b}
	p.space()
	if !p.byte('{') {
		return r, false
	}
	p.space()
	if p.peek('}') {
		p.i++
		return r, p.end()
	}
	seen := map[string]bool{}
	for {
		key, ok := p.rawString()
		if !ok || seen[string(key)] {
			// encoding/json merges a repeated key into what it decoded
			// before: left to it.
			return r, false
		}
		seen[string(key)] = true
		p.space()
		if !p.byte(':') {
			return r, false
		}
		p.space()
		switch string(key) {
		case "messages":
			if r.Messages, ok = p.messages(); !ok {
				return r, false
			}
		case "id":
			start := p.i
			end, ok := scanValue(b, p.i, 1)
			if !ok || b[start] == 'n' {
				return r, false
			}
			if !utf8.Valid(b[start:end]) {
				return r, false
			}
			r.ID = b[start:end:end]
			p.i = end
		case "origin":
			if r.Origin, ok = p.str(); !ok {
				return r, false
			}
		case "type":
			if r.Type, ok = p.str(); !ok {
				return r, false
			}
		case "subtype":
			if r.Subtype, ok = p.str(); !ok {
				return r, false
			}
		case "language":
			if r.Language, ok = p.str(); !ok {
				return r, false
			}
		case "sources":
			if r.Sources, ok = p.strings(); !ok {
				return r, false
			}
		default:
			return r, false
		}
		p.space()
		if p.peek('}') {
			p.i++
			return r, p.end()
		}
		if !p.byte(',') {
			return r, false
		}
		p.space()
	}
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) space() { p.i = skipSpace(p.b, p.i) }

func (p *fastParser) peek(c byte) bool { return p.i < len(p.b) && p.b[p.i] == c }

func (p *fastParser) byte(c byte) bool {
	if p.peek(c) {
		p.i++
		return true
	}
	return false
}

// end checks that only whitespace follows.
func (p *fastParser) end() bool {
	p.space()
	return p.i == len(p.b)
}

// rawString returns a string's bytes when it has no escapes.
func (p *fastParser) rawString() ([]byte, bool) {
	if !p.peek('"') {
		return nil, false
	}
	start := p.i + 1
	i := start
	for i < len(p.b) && strPlain[p.b[i]] {
		i++
	}
	if i >= len(p.b) || p.b[i] != '"' {
		return nil, false
	}
	p.i = i + 1
	return p.b[start:i], true
}

// str decodes a string value, checking its syntax and UTF-8 as it goes.
func (p *fastParser) str() (string, bool) {
	if !p.peek('"') {
		return "", false
	}
	b := p.b
	start := p.i + 1
	i, ok := plainRun(b, start)
	if !ok {
		return "", false
	}
	if i < len(b) && b[i] == '"' {
		p.i = i + 1
		return string(b[start:i]), true
	}
	// Escapes: decode from here on, as encoding/json does.
	out := make([]byte, 0, len(b)-start)
	out = append(out, b[start:i]...)
	for {
		if i >= len(b) {
			return "", false
		}
		switch c := b[i]; {
		case c == '"':
			p.i = i + 1
			return string(out), true
		case c == '\\':
			if i+1 >= len(b) {
				return "", false
			}
			switch e := b[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(b, i+2)
				if !ok {
					return "", false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
						if r2, ok := hex4(b, i+2); ok {
							if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
								out = utf8.AppendRune(out, d)
								i += 6
								continue
							}
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
				continue
			default:
				return "", false
			}
			i += 2
		default:
			j, ok := plainRun(b, i)
			if !ok || j == i { // a control character, or bad UTF-8
				return "", false
			}
			out = append(out, b[i:j]...)
			i = j
		}
	}
}

// plainRun returns the end of the run of string bytes from i that need no
// decoding (no quote, backslash or control character), false when it meets
// bytes that are not UTF-8.
func plainRun(b []byte, i int) (int, bool) {
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			if !strPlain[c] {
				return i, true
			}
			i++
			continue
		}
		// Polish letters are two-byte sequences: checked inline.
		if c >= 0xC2 && c <= 0xDF && i+1 < len(b) && b[i+1]&0xC0 == 0x80 {
			i += 2
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i, false
		}
		i += n
	}
	return i, true
}

func (p *fastParser) strings() ([]string, bool) {
	if !p.byte('[') {
		return nil, false
	}
	out := []string{}
	p.space()
	if p.byte(']') {
		return out, true
	}
	for {
		s, ok := p.str()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		p.space()
		if p.byte(']') {
			return out, true
		}
		if !p.byte(',') {
			return nil, false
		}
		p.space()
	}
}

func (p *fastParser) messages() ([]jsonMessage, bool) {
	if !p.byte('[') {
		return nil, false
	}
	out := make([]jsonMessage, 0, 4)
	p.space()
	if p.byte(']') {
		return out, true
	}
	for {
		if !p.byte('{') {
			return nil, false
		}
		var m jsonMessage
		var role, content bool
		p.space()
		if !p.byte('}') {
			for {
				key, ok := p.rawString()
				if !ok {
					return nil, false
				}
				p.space()
				if !p.byte(':') {
					return nil, false
				}
				p.space()
				switch string(key) {
				case "role":
					m.Role, ok = p.str()
					ok = ok && !role
					role = true
				case "content":
					m.Content, ok = p.str()
					ok = ok && !content
					content = true
				default:
					ok = false
				}
				if !ok {
					return nil, false
				}
				p.space()
				if p.byte('}') {
					break
				}
				if !p.byte(',') {
					return nil, false
				}
				p.space()
			}
		}
		out = append(out, m)
		p.space()
		if p.byte(']') {
			return out, true
		}
		if !p.byte(',') {
			return nil, false
		}
		p.space()
	}
}

// hex4 decodes the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
