package corpus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"

	"github.com/parquet-go/parquet-go"
)

// Writer writes samples or preference pairs in one format. JSON output is
// UTF-8 with '<', '>' and '&' left as they are. Close must be called: it
// ends the PLLuMIC array and writes the Parquet footer.
type Writer struct {
	format Format
	bw     *bufio.Writer
	enc    *json.Encoder
	buf    bytes.Buffer
	n      int
	pq     interface{ Close() error }
	write  func(any) error
	file   *os.File
}

// NewWriter returns a writer of format f to w.
func NewWriter(w io.Writer, f Format) (*Writer, error) {
	if f == FormatAuto {
		return nil, errors.New("corpus: a writer needs a format, not auto")
	}
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, err
	}
	wr := &Writer{format: f, bw: bufio.NewWriterSize(w, 64<<10)}
	wr.enc = json.NewEncoder(&wr.buf)
	wr.enc.SetEscapeHTML(false)
	if f.IsParquet() {
		switch f.base() {
		case PLLuMIC:
			wr.pq, wr.write = parquetWriter[pqPLLuMIC](wr.bw)
		case OpenAI:
			wr.pq, wr.write = parquetWriter[pqOpenAI](wr.bw)
		case ShareGPT:
			wr.pq, wr.write = parquetWriter[pqShareGPT](wr.bw)
		case Alpaca:
			wr.pq, wr.write = parquetWriter[pqAlpaca](wr.bw)
		case Preference:
			wr.pq, wr.write = parquetWriter[pqPreference](wr.bw)
		case Triples:
			wr.pq, wr.write = parquetWriter[pqTriples](wr.bw)
		}
	}
	return wr, nil
}

func parquetWriter[T any](w io.Writer) (interface{ Close() error }, func(any) error) {
	pw := parquet.NewGenericWriter[T](w)
	return pw, func(row any) error {
		_, err := pw.Write([]T{*row.(*T)})
		return err
	}
}

// Create creates (or truncates) the file at path and returns a writer of
// format f to it; Close closes the file.
func Create(path string, f Format) (*Writer, error) {
	file, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	w, err := NewWriter(file, f)
	if err != nil {
		file.Close()
		return nil, err
	}
	w.file = file
	return w, nil
}

// Format is the format being written.
func (w *Writer) Format() Format { return w.format }

// WriteSample writes one sample. Alpaca holds only single-turn samples and
// refuses others with ErrNotRepresentable; preference formats refuse samples.
func (w *Writer) WriteSample(s *Sample) error {
	if w.format.IsPreference() {
		return fmt.Errorf("corpus: sample %s: %w: format %s holds preference pairs", s.ID, ErrNotRepresentable, w.format)
	}
	rec, err := sampleRecord(s, w.format)
	if err != nil {
		return err
	}
	return w.emit(rec)
}

// WritePair writes one preference pair.
func (w *Writer) WritePair(p *PreferencePair) error {
	if !w.format.IsPreference() {
		return fmt.Errorf("corpus: pair %s: %w: format %s holds samples", p.ID, ErrNotRepresentable, w.format)
	}
	rec, err := pairRecord(p, w.format)
	if err != nil {
		return err
	}
	return w.emit(rec)
}

func (w *Writer) emit(rec any) error {
	if w.pq != nil {
		if err := w.write(rec); err != nil {
			return fmt.Errorf("corpus: parquet: %w", err)
		}
		w.n++
		return nil
	}
	w.buf.Reset()
	if err := w.enc.Encode(rec); err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	out := w.buf.Bytes()
	if w.format == PLLuMIC {
		sep := ",\n"
		if w.n == 0 {
			sep = "[\n"
		}
		w.bw.WriteString(sep)
		out = out[:len(out)-1]
	}
	w.n++
	_, err := w.bw.Write(out)
	return err
}

// Close finishes the output, flushes it and closes the file from Create.
func (w *Writer) Close() error {
	var err error
	if w.pq != nil {
		err = w.pq.Close()
	} else if w.format == PLLuMIC {
		if w.n == 0 {
			w.bw.WriteString("[")
		}
		w.bw.WriteString("\n]\n")
	}
	if ferr := w.bw.Flush(); err == nil {
		err = ferr
	}
	if w.file != nil {
		if cerr := w.file.Close(); err == nil {
			err = cerr
		}
		w.file = nil
	}
	if err != nil {
		return fmt.Errorf("corpus: %w", err)
	}
	return nil
}

func rawID(id string) json.RawMessage {
	if id == "" {
		return nil
	}
	b, _ := json.Marshal(id)
	return b
}

func metaJSON(m map[string]any) (string, error) {
	if len(m) == 0 {
		return "", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

func (s *Sample) jsonMeta() jsonMeta {
	return jsonMeta{ID: rawID(s.ID), Origin: string(s.Origin), Type: s.Type, Subtype: s.Subtype,
		Sources: s.Sources, Language: s.Language, Meta: s.Meta}
}

var shareGPTFrom = map[Role]string{RoleSystem: "system", RoleUser: "human", RoleAssistant: "gpt"}

// sampleRecord is the value written for s in format f (a pointer to a row
// struct for Parquet).
func sampleRecord(s *Sample, f Format) (any, error) {
	meta, err := metaJSON(s.Meta)
	if err != nil {
		return nil, fmt.Errorf("corpus: sample %s: meta: %w", s.ID, err)
	}
	switch f {
	case OpenAI, OpenAIParquet:
		conv := s.Conversation()
		if f == OpenAI {
			msgs := make([]jsonMessage, len(conv))
			for i, m := range conv {
				msgs[i] = jsonMessage{Role: string(m.Role), Content: m.Content}
			}
			return &openAIRecord{Messages: msgs, jsonMeta: s.jsonMeta()}, nil
		}
		msgs := make([]pqMessage, len(conv))
		for i, m := range conv {
			msgs[i] = pqMessage{Role: string(m.Role), Content: m.Content}
		}
		return &pqOpenAI{ID: s.ID, Messages: msgs, Origin: string(s.Origin), Type: s.Type, Subtype: s.Subtype,
			Sources: s.Sources, Language: s.Language, Meta: meta}, nil
	case ShareGPT, ShareGPTParquet:
		conv := s.Conversation()
		turns := make([]shareGPTTurn, len(conv))
		for i, m := range conv {
			from, ok := shareGPTFrom[m.Role]
			if !ok {
				from = string(m.Role)
			}
			turns[i] = shareGPTTurn{From: from, Value: m.Content}
		}
		if f == ShareGPT {
			return &shareGPTRecord{Conversations: turns, jsonMeta: s.jsonMeta()}, nil
		}
		pt := make([]pqTurn, len(turns))
		for i, t := range turns {
			pt[i] = pqTurn(t)
		}
		return &pqShareGPT{ID: s.ID, Conversations: pt, Origin: string(s.Origin), Type: s.Type, Subtype: s.Subtype,
			Sources: s.Sources, Language: s.Language, Meta: meta}, nil
	case Alpaca, AlpacaParquet:
		if len(s.Messages) != 2 || s.Messages[0].Role != RoleUser || s.Messages[1].Role != RoleAssistant {
			return nil, fmt.Errorf("corpus: sample %s: %w: Alpaca holds one user and one assistant turn; the sample has %d turns", s.ID, ErrNotRepresentable, len(s.Messages))
		}
		if f == Alpaca {
			return &alpacaRecord{Instruction: s.Messages[0].Content, Output: s.Messages[1].Content, System: s.System, jsonMeta: s.jsonMeta()}, nil
		}
		return &pqAlpaca{ID: s.ID, Instruction: s.Messages[0].Content, Output: s.Messages[1].Content, System: s.System,
			Origin: string(s.Origin), Type: s.Type, Subtype: s.Subtype, Sources: s.Sources, Language: s.Language, Meta: meta}, nil
	case PLLuMIC, PLLuMICJSONL:
		return pllumicOf(s), nil
	case PLLuMICParquet:
		r := pllumicOf(s)
		pr := &pqPLLuMIC{ConvID: s.ID, Origin: r.Origin, Meta: meta, Messages: make([]pqPLLuMICMessage, len(r.Messages))}
		for i, m := range r.Messages {
			pr.Messages[i] = pqPLLuMICMessage{Role: m.Role, Content: m.Content, Seq: int64(m.Seq), Language: m.Language,
				Type: m.Type, Subtype: m.Subtype, Source: s.Sources}
		}
		return pr, nil
	}
	return nil, fmt.Errorf("corpus: %w: cannot write samples as %s", ErrNotRepresentable, f)
}

// pllumicOf lays s out as the released PLLuMIC file does: a system message
// at seq -1 (empty when s has none), then turns sharing seq by pairs, each
// carrying the language, type, subtype and source list.
func pllumicOf(s *Sample) *pllumicRecord {
	src, _ := json.Marshal(s.Sources)
	if s.Sources == nil {
		src = []byte("[]")
	}
	id := rawID(s.ID)
	if n, err := strconv.Atoi(s.ID); err == nil && strconv.Itoa(n) == s.ID {
		id = json.RawMessage(s.ID) // the released file numbers its conversations
	}
	r := &pllumicRecord{ConvID: id, Origin: string(s.Origin), Meta: s.Meta,
		Messages: make([]pllumicMessage, 0, len(s.Messages)+1)}
	r.Messages = append(r.Messages, pllumicMessage{Role: string(RoleSystem), Content: s.System, Seq: -1,
		Language: s.Language, Type: s.Type, Subtype: s.Subtype, Source: src})
	for i, m := range s.Messages {
		r.Messages = append(r.Messages, pllumicMessage{Role: string(m.Role), Content: m.Content, Seq: i / 2,
			Language: s.Language, Type: s.Type, Subtype: s.Subtype, Source: src})
	}
	if r.ConvID == nil {
		r.ConvID = json.RawMessage(`""`)
	}
	return r
}

// pairRecord is the value written for p in format f. Preference output
// follows PLLuM-Align (chosen and rejected each hold the whole conversation)
// and adds "prompt" only when the responses start alike, where the common
// prefix would not find the prompt's end.
func pairRecord(p *PreferencePair, f Format) (any, error) {
	switch f.base() {
	case Preference:
		explicit := len(p.Chosen) > 0 && len(p.Rejected) > 0 && p.Chosen[0] == p.Rejected[0]
		join := func(tail []Message) []jsonMessage {
			var out []jsonMessage
			if !explicit {
				for _, m := range p.Prompt {
					out = append(out, jsonMessage{Role: string(m.Role), Content: m.Content})
				}
			}
			for _, m := range tail {
				out = append(out, jsonMessage{Role: string(m.Role), Content: m.Content})
			}
			return out
		}
		var prompt []jsonMessage
		if explicit {
			prompt = make([]jsonMessage, len(p.Prompt))
			for i, m := range p.Prompt {
				prompt[i] = jsonMessage{Role: string(m.Role), Content: m.Content}
			}
		}
		rec := &preferenceRecord{ID: rawID(p.ID), Prompt: prompt, Chosen: join(p.Chosen), Rejected: join(p.Rejected),
			ChosenRating: p.ChosenRating, RejectedRating: p.RejectedRating}
		if f == Preference {
			return rec, nil
		}
		conv := func(in []jsonMessage) []pqMessage {
			if in == nil {
				return nil
			}
			out := make([]pqMessage, len(in))
			for i, m := range in {
				out[i] = pqMessage(m)
			}
			return out
		}
		return &pqPreference{ID: p.ID, Prompt: conv(rec.Prompt), Chosen: conv(rec.Chosen), Rejected: conv(rec.Rejected),
			ChosenRating: p.ChosenRating, RejectedRating: p.RejectedRating}, nil
	case Triples:
		prompt := p.Prompt
		var system string
		if len(prompt) > 0 && prompt[0].Role == RoleSystem {
			system, prompt = prompt[0].Content, prompt[1:]
		}
		if len(prompt) != 1 || prompt[0].Role != RoleUser || len(p.Chosen) != 1 || len(p.Rejected) != 1 {
			return nil, fmt.Errorf("corpus: pair %s: %w: triples hold one user prompt and one response each", p.ID, ErrNotRepresentable)
		}
		if f == Triples {
			return &triplesRecord{ID: rawID(p.ID), System: system, Prompt: prompt[0].Content, Chosen: p.Chosen[0].Content, Rejected: p.Rejected[0].Content}, nil
		}
		return &pqTriples{ID: p.ID, System: system, Prompt: prompt[0].Content, Chosen: p.Chosen[0].Content, Rejected: p.Rejected[0].Content}, nil
	}
	return nil, fmt.Errorf("corpus: %w: cannot write pairs as %s", ErrNotRepresentable, f)
}

// WriteAll writes every sample of seq to w, stopping at the first error of
// seq or of the writer. It returns the number written; it does not Close w.
func WriteAll(ctx context.Context, w *Writer, seq iter.Seq2[Sample, error]) (int, error) {
	n := 0
	for s, err := range seq {
		if err != nil {
			return n, err
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if err := w.WriteSample(&s); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
