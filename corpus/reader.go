package corpus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"unicode/utf8"
)

// Policy says what a reader does with a record that fails to decode or
// validate.
type Policy int

const (
	// Strict stops at the first rejected record and returns its error. It is
	// the zero value, so nothing is dropped unless a caller asks.
	Strict Policy = iota
	// Lenient skips rejected records, writing each to Options.Quarantine, and
	// counts them in the Accounting.
	Lenient
)

// Options configures a Reader. The zero value reads a detected format
// strictly with DefaultLimits.
type Options struct {
	// Format of the input; FormatAuto detects it.
	Format Format
	// Origin is given to samples whose record does not name one.
	Origin Origin
	// Policy for rejected records.
	Policy Policy
	// Quarantine receives, under Lenient, one JSON line per rejected record:
	//
	//	{"file": "data.jsonl", "line": 12, "reason": "message 3: unknown role ...", "record": "<the raw record>"}
	//
	// with "row" (0-based) instead of "line" for Parquet. "record" holds the
	// record's bytes exactly as they were in the file: a JSONL line without
	// its line break, a PLLuMIC array element from its first to its last
	// byte, a Parquet row as JSON. A record that is not valid UTF-8 comes as
	// "record_base64" instead, since a JSON string cannot carry its bytes.
	// A record over Limits.MaxRecordBytes is not held in memory: it comes
	// with "record_bytes" (its length) and no record.
	Quarantine io.Writer
	// Limits for each record; the zero value means DefaultLimits.
	Limits Limits
	// OnReject, when set, is called under Lenient with each rejected
	// record's error, before it is quarantined.
	OnReject func(*RecordError)
}

// Accounting is the exact tally of a read: Read = Accepted + Rejected. A
// broken file structure that ends the read (a PLLuMIC array with a missing
// comma or bracket) counts as one rejected record.
type Accounting struct {
	Read     int64            `json:"read"`
	Accepted int64            `json:"accepted"`
	Rejected int64            `json:"rejected"`
	ByReason map[string]int64 `json:"by_reason,omitempty"` // rejected, keyed by the sentinel error's text
}

// Reasons returns ByReason's keys, most frequent first.
func (a Accounting) Reasons() []string {
	keys := make([]string, 0, len(a.ByReason))
	for k := range a.ByReason {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if a.ByReason[keys[i]] != a.ByReason[keys[j]] {
			return a.ByReason[keys[i]] > a.ByReason[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

// record is one raw record and where it starts.
type record struct {
	raw     []byte
	line    int
	row     int64
	tooLong int // the record's length when it was over the limit and not kept
}

// source yields raw records. next returns io.EOF at the end; any other error
// ends the read (a *RecordError for a file whose structure is broken).
type source interface {
	next() (record, error)
}

// Reader reads samples or preference pairs from one file, validating each
// record; Options fixes its settings when it is made. A Reader is not safe
// for concurrent use.
type Reader struct {
	opts   Options
	format Format
	name   string
	src    source
	closer io.Closer
	acct   Accounting
	qerr   error
}

// Open opens the file at path for reading with opts.
func Open(path string, opts Options) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	r, err := newReader(f, filepath.Base(path), opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads from in; name is used in errors, ids and the quarantine.
// Parquet input must also implement io.ReaderAt and io.Seeker (an *os.File
// does).
func NewReader(in io.Reader, name string, opts Options) (*Reader, error) {
	return newReader(in, name, opts)
}

func newReader(in io.Reader, name string, opts Options) (*Reader, error) {
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits()
	}
	r := &Reader{opts: opts, name: name, format: opts.Format}
	if r.format == FormatAuto || r.format.IsParquet() {
		ra, ok := in.(interface {
			io.ReaderAt
			io.Seeker
		})
		if !ok && r.format.IsParquet() {
			return nil, fmt.Errorf("corpus: %s: Parquet needs a file (io.ReaderAt and io.Seeker)", name)
		}
		var magic [4]byte
		if ok && (r.format.IsParquet() || func() bool { n, _ := ra.ReadAt(magic[:], 0); return n == 4 && string(magic[:]) == "PAR1" }()) {
			if err := r.openParquet(ra); err != nil {
				return nil, err
			}
			return r, nil
		}
	}
	br := bufio.NewReaderSize(in, 64<<10)
	if r.format == FormatAuto {
		f, err := sniffJSON(br, name)
		if err != nil {
			return nil, err
		}
		r.format = f
	}
	if r.format == PLLuMIC {
		r.src = newArraySource(br, r.opts.Limits.MaxRecordBytes)
	} else {
		r.src = &lineSource{r: br, max: r.opts.Limits.MaxRecordBytes}
	}
	return r, nil
}

// Format is the format being read (detected when Options.Format was auto).
func (r *Reader) Format() Format { return r.format }

// Accounting returns the tally so far; complete once iteration has ended.
func (r *Reader) Accounting() Accounting {
	a := r.acct
	if a.ByReason != nil {
		a.ByReason = make(map[string]int64, len(r.acct.ByReason))
		for k, v := range r.acct.ByReason {
			a.ByReason[k] = v
		}
	}
	return a
}

// Close closes the file opened by Open.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	err := r.closer.Close()
	r.closer = nil
	return err
}

// Samples returns the file's valid samples in order. Under Strict the first
// rejected record ends the sequence with its *RecordError; under Lenient
// rejected records are quarantined and only errors that end the read (I/O,
// a PLLuMIC array whose structure is broken, a cancelled ctx) are yielded,
// each as the last element.
func (r *Reader) Samples(ctx context.Context) iter.Seq2[Sample, error] {
	return func(yield func(Sample, error) bool) {
		if r.format.IsPreference() {
			yield(Sample{}, fmt.Errorf("corpus: %s: format %s holds preference pairs; read it with Pairs", r.name, r.format))
			return
		}
		decode := sampleDecoder(r.format)
		r.each(ctx, func(rec record) (any, *RecordError, bool) {
			id := positionID(r.name, rec.line, rec.row)
			d, e := decode(rec.raw, id, r.opts.Origin)
			if e == nil {
				e = validateSample(&d.sample, d.base, r.opts.Limits, false)
			}
			return d.sample, e, d.utf8Checked
		}, func(v any) bool {
			r.acct.Accepted++
			return yield(v.(Sample), nil)
		}, func(err error) { yield(Sample{}, err) })
	}
}

// Pairs returns the file's valid preference pairs, with the same policy
// handling as Samples.
func (r *Reader) Pairs(ctx context.Context) iter.Seq2[PreferencePair, error] {
	return func(yield func(PreferencePair, error) bool) {
		if !r.format.IsPreference() {
			yield(PreferencePair{}, fmt.Errorf("corpus: %s: format %s holds samples, not preference pairs; read it with Samples", r.name, r.format))
			return
		}
		decode := decodePreference
		if r.format.base() == Triples {
			decode = decodeTriples
		}
		r.each(ctx, func(rec record) (any, *RecordError, bool) {
			p, e := decode(rec.raw, positionID(r.name, rec.line, rec.row))
			if e == nil {
				e = validatePair(&p, r.opts.Limits)
			}
			return p, e, false
		}, func(v any) bool {
			r.acct.Accepted++
			return yield(v.(PreferencePair), nil)
		}, func(err error) { yield(PreferencePair{}, err) })
	}
}

func sampleDecoder(f Format) func([]byte, string, Origin) (decoded, *RecordError) {
	switch f.base() {
	case PLLuMIC:
		return decodePLLuMIC
	case ShareGPT:
		return decodeShareGPT
	case Alpaca:
		return decodeAlpaca
	}
	return decodeOpenAI
}

// batchRecords is how many records a decoding goroutine takes at a time.
const batchRecords = 256

// batch is a run of consecutive records and, once done is closed, what
// work made of each; err, on the last batch, is the error that ended the
// read (io.EOF at the end of the file).
type batch struct {
	recs []record
	vals []any
	errs []*RecordError
	err  error
	done chan struct{}
}

// each reads the records, runs work on them on all cores (decoding and
// validation, which do not depend on each other; work also says whether it
// saw that the whole record is UTF-8), and then, one by one in
// file order, applies the policy to what work rejected and hands what it
// accepted to emit; emit returns false when the consumer stopped. fail is
// called once with an error that ends the read. The result is that of a
// loop over the records in order: only the decoding runs ahead.
func (r *Reader) each(ctx context.Context, work func(record) (any, *RecordError, bool), emit func(any) bool, fail func(error)) {
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan *batch, workers)
	ordered := make(chan *batch, 2*workers)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				b.vals = make([]any, len(b.recs))
				b.errs = make([]*RecordError, len(b.recs))
				for i, rec := range b.recs {
					switch {
					case rec.tooLong > 0:
						b.errs[i] = &RecordError{Row: -1, Message: -1, Err: fmt.Errorf("%w: the record holds %d bytes; the limit is %d", ErrTooLong, rec.tooLong, r.opts.Limits.MaxRecordBytes)}
					default:
						// A record that is not UTF-8 is rejected as such,
						// whatever else is wrong with it; a decoder that
						// checked the whole record saves the second look.
						v, e, checked := work(rec)
						if !checked && !utf8.Valid(rec.raw) {
							v, e = nil, &RecordError{Row: -1, Message: -1, Err: ErrInvalidUTF8}
						}
						b.vals[i], b.errs[i] = v, e
					}
				}
				close(b.done)
			}
		}()
	}
	// The reader runs ahead of the consumer by a few batches.
	go func() {
		defer close(ordered)
		defer close(jobs)
		for {
			b := &batch{done: make(chan struct{})}
			var size int
			for len(b.recs) < batchRecords && size < 1<<20 {
				rec, err := r.src.next()
				if err != nil {
					b.err = err
					break
				}
				rec.raw = bytes.Clone(rec.raw)
				size += len(rec.raw)
				b.recs = append(b.recs, rec)
			}
			select {
			case ordered <- b:
			case <-quit:
				return
			}
			select {
			case jobs <- b:
			case <-quit:
				b.errs = make([]*RecordError, len(b.recs))
				close(b.done)
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	defer func() {
		close(quit)
		for b := range ordered {
			<-b.done
		}
		wg.Wait()
	}()
	for b := range ordered {
		if err := ctx.Err(); err != nil {
			fail(fmt.Errorf("corpus: %s: %w", r.name, err))
			return
		}
		<-b.done
		for i, rec := range b.recs {
			r.acct.Read++
			e := b.errs[i]
			if e == nil {
				if !emit(b.vals[i]) {
					return
				}
				continue
			}
			e.File, e.Line, e.Row = r.name, rec.line, rec.row
			if rec.row >= 0 {
				e.Line = 0
			}
			r.reject(e.kind())
			if r.opts.Policy == Strict {
				fail(e)
				return
			}
			if r.opts.OnReject != nil {
				r.opts.OnReject(e)
			}
			if err := r.quarantine(rec, e); err != nil {
				fail(err)
				return
			}
		}
		if err := b.err; err != nil && err != io.EOF {
			var re *RecordError
			if errors.As(err, &re) {
				re.File = r.name
				r.acct.Read++
				r.reject(re.kind())
			} else {
				err = fmt.Errorf("corpus: %s: %w", r.name, err)
			}
			fail(err)
			return
		}
	}
}

func (r *Reader) reject(kind string) {
	r.acct.Rejected++
	if r.acct.ByReason == nil {
		r.acct.ByReason = map[string]int64{}
	}
	r.acct.ByReason[kind]++
}

// quarantineLine is one line of the quarantine file (see Options.Quarantine).
type quarantineLine struct {
	File         string `json:"file"`
	Line         int    `json:"line,omitempty"`
	Row          *int64 `json:"row,omitempty"`
	Reason       string `json:"reason"`
	Record       string `json:"record,omitempty"`
	RecordBase64 string `json:"record_base64,omitempty"`
	RecordBytes  int    `json:"record_bytes,omitempty"`
}

func (r *Reader) quarantine(rec record, e *RecordError) error {
	if r.opts.Quarantine == nil {
		return nil
	}
	q := quarantineLine{File: r.name, Line: e.Line, Reason: e.Reason()}
	if rec.row >= 0 {
		q.Row = &rec.row
	}
	switch {
	case rec.tooLong > 0:
		q.RecordBytes = rec.tooLong
	case utf8.Valid(rec.raw):
		q.Record = string(rec.raw)
	default:
		q.RecordBase64 = base64.StdEncoding.EncodeToString(rec.raw)
	}
	b, err := json.Marshal(q)
	if err != nil {
		return fmt.Errorf("corpus: quarantine: %w", err)
	}
	if _, err := r.opts.Quarantine.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("corpus: quarantine: %w", err)
	}
	return nil
}

// ReadSamples opens path and yields its samples (see Reader.Samples). It
// closes the file when iteration ends.
func ReadSamples(ctx context.Context, path string, opts Options) iter.Seq2[Sample, error] {
	return func(yield func(Sample, error) bool) {
		r, err := Open(path, opts)
		if err != nil {
			yield(Sample{}, err)
			return
		}
		defer r.Close()
		for s, err := range r.Samples(ctx) {
			if !yield(s, err) {
				return
			}
		}
	}
}

// ReadPairs opens path and yields its preference pairs (see Reader.Pairs).
func ReadPairs(ctx context.Context, path string, opts Options) iter.Seq2[PreferencePair, error] {
	return func(yield func(PreferencePair, error) bool) {
		r, err := Open(path, opts)
		if err != nil {
			yield(PreferencePair{}, err)
			return
		}
		defer r.Close()
		for p, err := range r.Pairs(ctx) {
			if !yield(p, err) {
				return
			}
		}
	}
}

// lineSource yields the non-blank lines of a JSONL file.
type lineSource struct {
	r         *bufio.Reader
	max       int
	line      int
	buf       []byte
	lastChunk []byte // the line's last piece, to find its line break
}

func (s *lineSource) next() (record, error) {
	for {
		s.buf = s.buf[:0]
		s.line++
		start, over := s.line, 0
		for {
			chunk, err := s.r.ReadSlice('\n')
			s.lastChunk = chunk
			if over > 0 || (s.max > 0 && len(s.buf)+len(chunk) > s.max) {
				over += len(s.buf) + len(chunk)
				s.buf = s.buf[:0]
			} else {
				s.buf = append(s.buf, chunk...)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil && err != io.EOF {
				return record{}, fmt.Errorf("line %d: %w", start, err)
			}
			if err == io.EOF && len(s.buf) == 0 && over == 0 {
				return record{}, io.EOF
			}
			break
		}
		if over > 0 {
			// The length of the record, as quarantined, leaves out the line break.
			return record{line: start, row: -1, tooLong: over - (len(s.lastChunk) - len(trimEOL(s.lastChunk)))}, nil
		}
		raw := trimEOL(s.buf)
		if isBlank(raw) {
			continue
		}
		return record{raw: raw, line: start, row: -1}, nil
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}
