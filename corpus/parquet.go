package corpus

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
)

// Parquet rows: each JSON layout's fields as columns, every column optional
// as in files the Hugging Face hub exports, lists in the standard LIST
// encoding. Sample.Meta is stored as JSON text in a "meta" column. A row
// read is turned into the JSON record of its layout and decoded like a JSONL
// line, so both paths validate alike; the quarantine holds that JSON.

type pqMessage struct {
	Role    string `parquet:"role,optional" json:"role"`
	Content string `parquet:"content,optional" json:"content"`
}

type pqTurn struct {
	From  string `parquet:"from,optional" json:"from"`
	Value string `parquet:"value,optional" json:"value"`
}

type pqPLLuMICMessage struct {
	Role     string   `parquet:"role,optional" json:"role"`
	Content  string   `parquet:"content,optional" json:"content"`
	Seq      int64    `parquet:"seq,optional" json:"seq"`
	Language string   `parquet:"language,optional" json:"language,omitempty"`
	Type     string   `parquet:"type,optional" json:"type,omitempty"`
	Subtype  string   `parquet:"subtype,optional" json:"subtype,omitempty"`
	Source   []string `parquet:"source,list,optional" json:"source"`
}

type pqPLLuMIC struct {
	ConvID   string             `parquet:"conv_id,optional" json:"conv_id"`
	Origin   string             `parquet:"origin,optional" json:"origin,omitempty"`
	Messages []pqPLLuMICMessage `parquet:"messages,list,optional" json:"messages"`
	Meta     string             `parquet:"meta,optional" json:"-"`
}

type pqOpenAI struct {
	ID       string      `parquet:"id,optional" json:"id,omitempty"`
	Messages []pqMessage `parquet:"messages,list,optional" json:"messages"`
	Origin   string      `parquet:"origin,optional" json:"origin,omitempty"`
	Type     string      `parquet:"type,optional" json:"type,omitempty"`
	Subtype  string      `parquet:"subtype,optional" json:"subtype,omitempty"`
	Sources  []string    `parquet:"sources,list,optional" json:"sources,omitempty"`
	Language string      `parquet:"language,optional" json:"language,omitempty"`
	Meta     string      `parquet:"meta,optional" json:"-"`
}

type pqShareGPT struct {
	ID            string   `parquet:"id,optional" json:"id,omitempty"`
	Conversations []pqTurn `parquet:"conversations,list,optional" json:"conversations"`
	Origin        string   `parquet:"origin,optional" json:"origin,omitempty"`
	Type          string   `parquet:"type,optional" json:"type,omitempty"`
	Subtype       string   `parquet:"subtype,optional" json:"subtype,omitempty"`
	Sources       []string `parquet:"sources,list,optional" json:"sources,omitempty"`
	Language      string   `parquet:"language,optional" json:"language,omitempty"`
	Meta          string   `parquet:"meta,optional" json:"-"`
}

type pqAlpaca struct {
	ID          string   `parquet:"id,optional" json:"id,omitempty"`
	Instruction string   `parquet:"instruction,optional" json:"instruction"`
	Input       string   `parquet:"input,optional" json:"input"`
	Output      string   `parquet:"output,optional" json:"output"`
	System      string   `parquet:"system,optional" json:"system,omitempty"`
	Origin      string   `parquet:"origin,optional" json:"origin,omitempty"`
	Type        string   `parquet:"type,optional" json:"type,omitempty"`
	Subtype     string   `parquet:"subtype,optional" json:"subtype,omitempty"`
	Sources     []string `parquet:"sources,list,optional" json:"sources,omitempty"`
	Language    string   `parquet:"language,optional" json:"language,omitempty"`
	Meta        string   `parquet:"meta,optional" json:"-"`
}

type pqPreference struct {
	ID             string      `parquet:"id,optional" json:"id,omitempty"`
	Prompt         []pqMessage `parquet:"prompt,list,optional" json:"prompt,omitempty"`
	Chosen         []pqMessage `parquet:"chosen,list,optional" json:"chosen"`
	Rejected       []pqMessage `parquet:"rejected,list,optional" json:"rejected"`
	ChosenRating   *float64    `parquet:"chosen_rating,optional" json:"chosen_rating,omitempty"`
	RejectedRating *float64    `parquet:"rejected_rating,optional" json:"rejected_rating,omitempty"`
}

type pqTriples struct {
	ID       string `parquet:"id,optional" json:"id,omitempty"`
	System   string `parquet:"system,optional" json:"system,omitempty"`
	Prompt   string `parquet:"prompt,optional" json:"prompt"`
	Chosen   string `parquet:"chosen,optional" json:"chosen"`
	Rejected string `parquet:"rejected,optional" json:"rejected"`
}

// metaOf returns the JSON text of a row's meta column, if it has one.
func metaOf(row any) string {
	switch r := row.(type) {
	case *pqPLLuMIC:
		return r.Meta
	case *pqOpenAI:
		return r.Meta
	case *pqShareGPT:
		return r.Meta
	case *pqAlpaca:
		return r.Meta
	}
	return ""
}

// parquetSource yields each row of a Parquet file as its JSON record.
type parquetSource[T any] struct {
	r    *parquet.GenericReader[T]
	rows []T
	n, i int
	row  int64
}

func (s *parquetSource[T]) next() (rec record, err error) {
	if s.i >= s.n {
		clear(s.rows)
		n, rerr := safeRead(s.r, s.rows)
		s.n, s.i = n, 0
		if n == 0 {
			if rerr == nil || rerr == io.EOF {
				return record{}, io.EOF
			}
			return record{}, fmt.Errorf("row %d: %w", s.row, rerr)
		}
	}
	row := &s.rows[s.i]
	s.i++
	raw, err := json.Marshal(row)
	if err != nil {
		return record{}, fmt.Errorf("row %d: %w", s.row, err)
	}
	if m := metaOf(any(row)); m != "" {
		raw = append(append(append(raw[:len(raw)-1], `,"meta":`...), m...), '}')
	}
	rec = record{raw: raw, row: s.row}
	s.row++
	return rec, nil
}

// safeRead turns a panic of the Parquet library on a damaged file into an
// error: input must never crash the caller.
func safeRead[T any](r *parquet.GenericReader[T], rows []T) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			n, err = 0, fmt.Errorf("damaged Parquet data: %v", p)
		}
	}()
	return r.Read(rows)
}

func newParquetSource[T any](f *parquet.File) (src source, err error) {
	defer func() {
		if p := recover(); p != nil {
			src, err = nil, fmt.Errorf("the file's columns do not fit the format: %v", p)
		}
	}()
	return &parquetSource[T]{r: parquet.NewGenericReader[T](f), rows: make([]T, 64)}, nil
}

func openParquetFile(ra io.ReaderAt, size int64) (f *parquet.File, err error) {
	// The library allocates the footer length the file declares before
	// reading it: check it against the file's size first, so that a damaged
	// or hostile file cannot make it allocate gigabytes.
	var tail [8]byte
	if size < 12 {
		return nil, fmt.Errorf("not a Parquet file: %d bytes", size)
	}
	if _, err := ra.ReadAt(tail[:], size-8); err != nil {
		return nil, fmt.Errorf("reading the Parquet footer: %w", err)
	}
	if n := int64(binary.LittleEndian.Uint32(tail[:4])); n+12 > size {
		return nil, fmt.Errorf("damaged Parquet file: the footer claims %d bytes of a %d-byte file", n, size)
	}
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("damaged Parquet file: %v", p)
		}
	}()
	return parquet.OpenFile(ra, size)
}

func (r *Reader) openParquet(ra interface {
	io.ReaderAt
	io.Seeker
}) error {
	size, err := ra.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("corpus: %s: %w", r.name, err)
	}
	f, err := openParquetFile(ra, size)
	if err != nil {
		return fmt.Errorf("corpus: %s: %w", r.name, err)
	}
	if r.format == FormatAuto {
		if r.format, err = formatOfSchema(f.Schema(), r.name); err != nil {
			return err
		}
	}
	switch r.format.base() {
	case PLLuMIC:
		r.src, err = newParquetSource[pqPLLuMIC](f)
	case OpenAI:
		r.src, err = newParquetSource[pqOpenAI](f)
	case ShareGPT:
		r.src, err = newParquetSource[pqShareGPT](f)
	case Alpaca:
		r.src, err = newParquetSource[pqAlpaca](f)
	case Preference:
		r.src, err = newParquetSource[pqPreference](f)
	case Triples:
		r.src, err = newParquetSource[pqTriples](f)
	}
	if err != nil {
		return fmt.Errorf("corpus: %s: %w", r.name, err)
	}
	return nil
}

// formatOfSchema names the layout whose columns a Parquet schema holds.
func formatOfSchema(s *parquet.Schema, name string) (Format, error) {
	cols := map[string]parquet.Field{}
	for _, f := range s.Fields() {
		cols[f.Name()] = f
	}
	switch {
	case cols["conv_id"] != nil:
		return PLLuMICParquet, nil
	case cols["messages"] != nil:
		return OpenAIParquet, nil
	case cols["conversations"] != nil:
		return ShareGPTParquet, nil
	case cols["instruction"] != nil || cols["output"] != nil:
		return AlpacaParquet, nil
	case cols["chosen"] != nil:
		if cols["chosen"].Leaf() {
			return TriplesParquet, nil
		}
		return PreferenceParquet, nil
	}
	return "", fmt.Errorf("corpus: %s: cannot detect the format: no column conv_id, messages, conversations, instruction or chosen", name)
}

func detectParquet(ra io.ReaderAt, size int64, name string) (Format, error) {
	f, err := openParquetFile(ra, size)
	if err != nil {
		return "", fmt.Errorf("corpus: %s: %w", name, err)
	}
	return formatOfSchema(f.Schema(), name)
}
