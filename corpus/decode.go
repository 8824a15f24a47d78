package corpus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	gojson "github.com/goccy/go-json"
)

// The JSON shapes of each format. Besides the fields of the format itself,
// the JSONL readers take the sample metadata pltune's writers add (id,
// origin, type, subtype, sources, language, meta), so a round trip through
// any layout keeps it.

type jsonMeta struct {
	ID       json.RawMessage `json:"id,omitempty"`
	Origin   string          `json:"origin,omitempty"`
	Type     string          `json:"type,omitempty"`
	Subtype  string          `json:"subtype,omitempty"`
	Sources  []string        `json:"sources,omitempty"`
	Language string          `json:"language,omitempty"`
	Meta     map[string]any  `json:"meta,omitempty"`
}

type jsonMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type openAIRecord struct {
	Messages []jsonMessage `json:"messages"`
	jsonMeta
}

type shareGPTTurn struct {
	From  string `json:"from"`
	Value string `json:"value"`
}

type shareGPTRecord struct {
	Conversations []shareGPTTurn `json:"conversations"`
	jsonMeta
}

type alpacaRecord struct {
	Instruction string `json:"instruction"`
	Input       string `json:"input"`
	Output      string `json:"output"`
	System      string `json:"system,omitempty"`
	jsonMeta
}

type pllumicMessage struct {
	Role     string          `json:"role"`
	Content  string          `json:"content"`
	Seq      int             `json:"seq"`
	Language string          `json:"language,omitempty"`
	Type     string          `json:"type,omitempty"`
	Subtype  string          `json:"subtype,omitempty"`
	Source   json.RawMessage `json:"source,omitempty"`
}

type pllumicRecord struct {
	ConvID   json.RawMessage  `json:"conv_id"`
	Origin   string           `json:"origin,omitempty"`
	Meta     map[string]any   `json:"meta,omitempty"`
	Messages []pllumicMessage `json:"messages"`
}

type preferenceRecord struct {
	ID             json.RawMessage `json:"id,omitempty"`
	Prompt         []jsonMessage   `json:"prompt,omitempty"`
	Chosen         []jsonMessage   `json:"chosen"`
	Rejected       []jsonMessage   `json:"rejected"`
	ChosenRating   *float64        `json:"chosen_rating,omitempty"`
	RejectedRating *float64        `json:"rejected_rating,omitempty"`
}

type triplesRecord struct {
	ID       json.RawMessage `json:"id,omitempty"`
	System   string          `json:"system,omitempty"`
	Prompt   string          `json:"prompt"`
	Chosen   string          `json:"chosen"`
	Rejected string          `json:"rejected"`
}

// decoded is what a record decoder returns: the sample and the 1-based
// index its first turn has in the file's message list.
type decoded struct {
	sample Sample
	base   int
	// utf8Checked: the decoder saw that the whole record is UTF-8.
	utf8Checked bool
}

// unmarshal decodes rec into v, reporting JSON errors as ErrMalformedJSON.
// goccy/go-json decodes about twice as fast as encoding/json, which is most
// of a reader's time, but it skips unknown fields without checking their
// syntax; so validJSON (encoding/json.Valid's verdict, faster) checks the
// record first, and a record
// go-json refuses is decoded again by encoding/json, whose verdict and error
// text stand. FuzzDecodeAgreement checks that the result equals
// encoding/json's.
func unmarshal(rec []byte, v any) *RecordError {
	if validJSON(rec) && gojson.Unmarshal(rec, v) == nil {
		return nil
	}
	if err := json.Unmarshal(rec, v); err != nil {
		return &RecordError{Row: -1, Message: -1, Err: fmt.Errorf("%w: %v", ErrMalformedJSON, err)}
	}
	return nil
}

// idOf turns a JSON id (string or number) into a string; fallback when absent.
func idOf(raw json.RawMessage, fallback string) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return fallback
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func parseOrigin(s string, dflt Origin) (Origin, *RecordError) {
	switch o := Origin(strings.ToLower(s)); o {
	case OriginUnknown:
		return dflt, nil
	case OriginOrganic, OriginConverted, OriginSynthetic:
		return o, nil
	}
	return "", &RecordError{Row: -1, Message: -1, Field: "origin",
		Err: fmt.Errorf("%w %q; want organic, converted or synthetic", ErrUnknownOrigin, s)}
}

func (m *jsonMeta) apply(s *Sample, fallbackID string, dflt Origin) *RecordError {
	s.ID = idOf(m.ID, fallbackID)
	o, e := parseOrigin(m.Origin, dflt)
	if e != nil {
		return e
	}
	s.Origin, s.Type, s.Subtype, s.Sources, s.Language, s.Meta = o, m.Type, m.Subtype, m.Sources, m.Language, m.Meta
	return nil
}

// splitSystem moves a leading system message into s.System and returns the
// file index of the first remaining message.
func splitSystem(s *Sample, msgs []Message) int {
	if len(msgs) > 0 && msgs[0].Role == RoleSystem {
		s.System = msgs[0].Content
		s.Messages = msgs[1:]
		return 2
	}
	s.Messages = msgs
	return 1
}

func decodeOpenAI(rec []byte, id string, origin Origin) (decoded, *RecordError) {
	r, ok := fastOpenAI(rec)
	if ok {
		d, e := decodedOpenAI(r, id, origin)
		d.utf8Checked = true
		return d, e
	}
	{
		r = openAIRecord{}
		if e := unmarshal(rec, &r); e != nil {
			return decoded{}, e
		}
	}
	return decodedOpenAI(r, id, origin)
}

func decodedOpenAI(r openAIRecord, id string, origin Origin) (decoded, *RecordError) {
	if r.Messages == nil {
		return decoded{}, &RecordError{Row: -1, Message: -1, Field: "messages", Err: ErrMissingField}
	}
	var d decoded
	if e := r.apply(&d.sample, id, origin); e != nil {
		return d, e
	}
	msgs := make([]Message, len(r.Messages))
	for i, m := range r.Messages {
		msgs[i] = Message{Role: Role(m.Role), Content: m.Content}
	}
	d.base = splitSystem(&d.sample, msgs)
	return d, nil
}

// shareGPTRoles maps ShareGPT speakers onto roles; others are kept as they
// are and fail validation as unknown roles.
var shareGPTRoles = map[string]Role{
	"system": RoleSystem, "human": RoleUser, "user": RoleUser,
	"gpt": RoleAssistant, "assistant": RoleAssistant, "chatgpt": RoleAssistant, "bing": RoleAssistant, "bard": RoleAssistant,
}

func decodeShareGPT(rec []byte, id string, origin Origin) (decoded, *RecordError) {
	var r shareGPTRecord
	if e := unmarshal(rec, &r); e != nil {
		return decoded{}, e
	}
	if r.Conversations == nil {
		return decoded{}, &RecordError{Row: -1, Message: -1, Field: "conversations", Err: ErrMissingField}
	}
	var d decoded
	if e := r.apply(&d.sample, id, origin); e != nil {
		return d, e
	}
	msgs := make([]Message, len(r.Conversations))
	for i, t := range r.Conversations {
		role, ok := shareGPTRoles[t.From]
		if !ok {
			role = Role(t.From)
		}
		msgs[i] = Message{Role: role, Content: t.Value}
	}
	d.base = splitSystem(&d.sample, msgs)
	return d, nil
}

func decodeAlpaca(rec []byte, id string, origin Origin) (decoded, *RecordError) {
	var r alpacaRecord
	if e := unmarshal(rec, &r); e != nil {
		return decoded{}, e
	}
	d := decoded{base: 1}
	if e := r.apply(&d.sample, id, origin); e != nil {
		return d, e
	}
	user := r.Instruction
	if strings.TrimSpace(r.Input) != "" {
		user += "\n\n" + r.Input
	}
	d.sample.System = r.System
	d.sample.Messages = []Message{{Role: RoleUser, Content: user}, {Role: RoleAssistant, Content: r.Output}}
	return d, nil
}

// stringList reads PLLuMIC's source: a list of strings (other JSON values
// are kept as their JSON text), a bare string, or null.
func stringList(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null" || string(raw) == "[]":
		return nil, nil
	case raw[0] == '"':
		var one string
		if err := json.Unmarshal(raw, &one); err != nil || one == "" {
			return nil, err
		}
		return []string{one}, nil
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		var s string
		if json.Unmarshal(it, &s) != nil {
			s = string(it)
		}
		out = append(out, s)
	}
	return out, nil
}

func decodePLLuMIC(rec []byte, id string, origin Origin) (decoded, *RecordError) {
	var r pllumicRecord
	if e := unmarshal(rec, &r); e != nil {
		return decoded{}, e
	}
	if r.Messages == nil {
		return decoded{}, &RecordError{Row: -1, Message: -1, Field: "messages", Err: ErrMissingField}
	}
	var d decoded
	s := &d.sample
	s.ID = idOf(r.ConvID, id)
	o, e := parseOrigin(r.Origin, origin)
	if e != nil {
		return d, e
	}
	s.Origin, s.Meta = o, r.Meta
	msgs := make([]Message, len(r.Messages))
	for i, m := range r.Messages {
		msgs[i] = Message{Role: Role(m.Role), Content: m.Content}
		if s.Type == "" && m.Role != string(RoleSystem) {
			s.Type, s.Subtype = m.Type, m.Subtype
		}
		if s.Language == "" {
			s.Language = m.Language
		}
		src, err := stringList(m.Source)
		if err != nil {
			return d, &RecordError{Row: -1, Message: i + 1, Field: "source", Err: fmt.Errorf("%w: %v", ErrMalformedJSON, err)}
		}
		for _, x := range src {
			if !containsString(s.Sources, x) {
				s.Sources = append(s.Sources, x)
			}
		}
	}
	d.base = splitSystem(s, msgs)
	return d, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func toMessages(in []jsonMessage) []Message {
	if in == nil {
		return nil
	}
	out := make([]Message, len(in))
	for i, m := range in {
		out[i] = Message{Role: Role(m.Role), Content: m.Content}
	}
	return out
}

func decodePreference(rec []byte, id string) (PreferencePair, *RecordError) {
	var r preferenceRecord
	if e := unmarshal(rec, &r); e != nil {
		return PreferencePair{}, e
	}
	for _, f := range []struct {
		name string
		v    []jsonMessage
	}{{"chosen", r.Chosen}, {"rejected", r.Rejected}} {
		if f.v == nil {
			return PreferencePair{}, &RecordError{Row: -1, Message: -1, Field: f.name, Err: ErrMissingField}
		}
	}
	p := PreferencePair{ID: idOf(r.ID, id), ChosenRating: r.ChosenRating, RejectedRating: r.RejectedRating}
	chosen, rejected := toMessages(r.Chosen), toMessages(r.Rejected)
	if r.Prompt != nil {
		p.Prompt, p.Chosen, p.Rejected = toMessages(r.Prompt), chosen, rejected
		return p, nil
	}
	if slices.Equal(chosen, rejected) {
		return p, &RecordError{Row: -1, Message: -1, Field: "rejected", Err: ErrSamePreference}
	}
	n := 0
	for n < len(chosen) && n < len(rejected) && chosen[n] == rejected[n] {
		n++
	}
	p.Prompt, p.Chosen, p.Rejected = chosen[:n:n], chosen[n:], rejected[n:]
	return p, nil
}

func decodeTriples(rec []byte, id string) (PreferencePair, *RecordError) {
	var r triplesRecord
	if e := unmarshal(rec, &r); e != nil {
		return PreferencePair{}, e
	}
	p := PreferencePair{ID: idOf(r.ID, id)}
	if r.System != "" {
		p.Prompt = append(p.Prompt, Message{Role: RoleSystem, Content: r.System})
	}
	p.Prompt = append(p.Prompt, Message{Role: RoleUser, Content: r.Prompt})
	p.Chosen = []Message{{Role: RoleAssistant, Content: r.Chosen}}
	p.Rejected = []Message{{Role: RoleAssistant, Content: r.Rejected}}
	return p, nil
}

// positionID is the id given to a record whose file names none.
func positionID(name string, line int, row int64) string {
	if row >= 0 {
		return name + ":row" + strconv.FormatInt(row, 10)
	}
	return name + ":" + strconv.Itoa(line)
}
