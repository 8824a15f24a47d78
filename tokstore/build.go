package tokstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/tokenize"
)

// DefaultChunkBytes is the size of a unit of work (and of resumption)
// when BuildOptions leaves it 0.
const DefaultChunkBytes = 64 << 20

// BuildOptions configure Build.
type BuildOptions struct {
	// Tokenizer encodes the text; required. TokenizerSHA256 identifies it
	// in the manifest (TokenizerSHA256 of its folder).
	Tokenizer       *tokenize.Tokenizer
	TokenizerSHA256 string
	// Type is what to build; "" detects it from the first file: .txt and
	// JSONL whose first record has a "text" field and no "messages",
	// "conversations" or "instruction" are text, anything else chat.
	Type Type
	// SFT configures the chat sequences (template, maximum length, …).
	SFT tokenize.SFTOptions
	// EOSToken ends every text document; "" means the tokenizer's
	// DocumentEndToken, as tokenize.PretrainRows does.
	EOSToken string
	// ChunkBytes splits text files into units of about this many bytes
	// (at document boundaries); chat files are one unit each.
	ChunkBytes int64
	// Workers is the number of encoding goroutines; 0 means GOMAXPROCS.
	Workers int
	// Rank and World share the units among processes building one store
	// on a shared file system: this process builds units i with
	// i mod World = Rank. World 0 means 1.
	Rank, World int
	// Progress, when set, is called after every finished unit and every
	// few thousand documents.
	Progress func(Progress)
}

// Progress is where a build stands.
type Progress struct {
	Units, UnitsDone   int   // all units; finished (by anyone) so far
	Bytes, BytesDone   int64 // source bytes in all units; done by this process (resumed units count)
	Docs, Tokens       int64 // documents and tokens this process encoded in this run
	Resumed            int   // units found finished on start
	ThisRank, AllRanks bool  // this rank's share is done; every unit is done
}

// BuildResult is what Build did.
type BuildResult struct {
	// Manifest is the finished store's manifest; nil when other ranks'
	// units are still missing (their rank writes it when it finishes).
	Manifest *Manifest
	Progress Progress
}

// TokenizerSHA256 fingerprints the tokenizer at path (a folder or a
// tokenizer.json): the SHA-256 of tokenizer.json followed by
// tokenizer_config.json when there is one (its chat template shapes chat
// stores).
func TokenizerSHA256(path string) (string, error) {
	files := []string{path}
	if st, err := os.Stat(path); err != nil {
		return "", err
	} else if st.IsDir() {
		files = []string{filepath.Join(path, "tokenizer.json"), filepath.Join(path, "tokenizer_config.json")}
	}
	h := sha256.New()
	for i, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) && i > 0 {
			continue
		}
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// plan is build/plan.json: the inputs and the units, the same for every
// rank and every resume.
type plan struct {
	Type       Type          `json:"type"`
	DType      DType         `json:"dtype"`
	Tokenizer  TokenizerInfo `json:"tokenizer"`
	Sources    []planSource  `json:"sources"`
	ChunkBytes int64         `json:"chunk_bytes"`
	Units      []planUnit    `json:"units"`
}

type planSource struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
}

type planUnit struct {
	Source int   `json:"source"`
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
}

// record is build/NNNNN.json, written when shard NNNNN is complete.
type record struct {
	Shard   Shard   `json:"shard"`
	Skipped Skipped `json:"skipped"`
}

// Build tokenizes files into the store at dir (created when missing). A
// store whose build was interrupted is continued: finished units are kept
// when the inputs (paths, sizes, modification times), the tokenizer and
// the options are those of the first attempt; otherwise Build refuses and
// says so. Cancelling ctx stops after removing the partial shard; what is
// finished stays.
func Build(ctx context.Context, dir string, files []string, opts BuildOptions) (*BuildResult, error) {
	if opts.Tokenizer == nil {
		return nil, errors.New("tokstore: BuildOptions.Tokenizer is nil")
	}
	if len(files) == 0 {
		return nil, errors.New("tokstore: no input files")
	}
	if opts.World <= 0 {
		opts.World = 1
	}
	if opts.Rank < 0 || opts.Rank >= opts.World {
		return nil, fmt.Errorf("tokstore: rank %d outside a world of %d", opts.Rank, opts.World)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.ChunkBytes <= 0 {
		opts.ChunkBytes = DefaultChunkBytes
	}
	if opts.Type == "" {
		t, err := DetectType(files[0])
		if err != nil {
			return nil, err
		}
		opts.Type = t
	}
	if opts.Type != TypeText && opts.Type != TypeChat {
		return nil, fmt.Errorf("tokstore: type %q, want text or chat", opts.Type)
	}
	tok := opts.Tokenizer
	eosName := opts.EOSToken
	if eosName == "" {
		eosName = tok.DocumentEndToken()
	}
	eos, ok := tok.TokenToID(eosName)
	if !ok {
		return nil, fmt.Errorf("tokstore: EOS token %q is not in the vocabulary; set BuildOptions.EOSToken", eosName)
	}
	p := &plan{
		Type: opts.Type, DType: DTypeFor(tok.VocabSize()),
		Tokenizer:  TokenizerInfo{SHA256: opts.TokenizerSHA256, VocabSize: tok.VocabSize(), EOSID: eos},
		ChunkBytes: opts.ChunkBytes,
	}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("tokstore: %w", err)
		}
		if st.IsDir() {
			return nil, fmt.Errorf("tokstore: %s is a folder; give its files", f)
		}
		p.Sources = append(p.Sources, planSource{Path: f, Size: st.Size(), ModTime: st.ModTime().UnixNano()})
	}
	for _, sub := range []string{"shards", "build"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	p, err := loadOrWritePlan(dir, p)
	if err != nil {
		return nil, err
	}
	b := &builder{dir: dir, plan: p, opts: opts, eos: eos}
	if opts.Type == TypeChat {
		if b.sft, err = tokenize.NewSFTBuilder(tok, opts.SFT); err != nil {
			return nil, err
		}
	}
	return b.run(ctx)
}

// DetectType tells whether path holds raw text or chat samples (see
// BuildOptions.Type).
func DetectType(path string) (Type, error) {
	if strings.HasSuffix(path, ".txt") {
		return TypeText, nil
	}
	if !strings.HasSuffix(path, ".jsonl") {
		return TypeChat, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("tokstore: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return "", fmt.Errorf("tokstore: %s: first record: %v", path, err)
		}
		_, text := rec["text"]
		_, m := rec["messages"]
		_, c := rec["conversations"]
		_, in := rec["instruction"]
		if text && !m && !c && !in {
			return TypeText, nil
		}
		return TypeChat, nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("tokstore: %s: %w", path, err)
	}
	return "", fmt.Errorf("tokstore: %s has no records", path)
}

func loadOrWritePlan(dir string, p *plan) (*plan, error) {
	path := filepath.Join(dir, "build", "plan.json")
	if b, err := os.ReadFile(path); err == nil {
		var old plan
		if err := json.Unmarshal(b, &old); err != nil {
			return nil, fmt.Errorf("tokstore: %s: %v", path, err)
		}
		units := old.Units
		old.Units = nil
		if !reflect.DeepEqual(&old, p) {
			return nil, fmt.Errorf("tokstore: %s was started with other inputs, tokenizer or options (see %s); build into a new folder or delete it", dir, path)
		}
		old.Units = units
		return &old, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		return nil, fmt.Errorf("tokstore: %s already holds a store that was not built here (no build/plan.json); build into a new folder", dir)
	}
	for i, s := range p.Sources {
		if p.Type == TypeChat || s.Size <= p.ChunkBytes {
			p.Units = append(p.Units, planUnit{Source: i, Offset: 0, Length: s.Size})
			continue
		}
		bounds, err := chunkBounds(s.Path, s.Size, p.ChunkBytes, strings.HasSuffix(s.Path, ".jsonl") || strings.HasSuffix(s.Path, ".json"))
		if err != nil {
			return nil, err
		}
		for k := 0; k+1 < len(bounds); k++ {
			p.Units = append(p.Units, planUnit{Source: i, Offset: bounds[k], Length: bounds[k+1] - bounds[k]})
		}
	}
	b, err := json.MarshalIndent(p, "", " ")
	if err != nil {
		return nil, err
	}
	return p, writeAtomic(path, b)
}

// writeAtomic writes b to path through a temporary file of its own, so
// ranks writing the same file never see a half-written one.
func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// chunkBounds splits a text file at document boundaries near multiples of
// chunk: after a newline for JSONL, after a blank line for plain text.
func chunkBounds(path string, size, chunk int64, jsonl bool) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokstore: %w", err)
	}
	defer f.Close()
	bounds := []int64{0}
	for target := chunk; target < size; {
		b, err := nextBoundary(f, target, size, jsonl)
		if err != nil {
			return nil, fmt.Errorf("tokstore: %s: %w", path, err)
		}
		if b >= size {
			break
		}
		bounds = append(bounds, b)
		target = max(b+1, bounds[len(bounds)-1]+chunk)
	}
	return append(bounds, size), nil
}

// nextBoundary finds the first document boundary after offset at: the
// start of the line after the next newline (JSONL), or the start of the
// line after the next blank line (plain text).
func nextBoundary(f *os.File, at, size int64, jsonl bool) (int64, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, at, size-at), 1<<16)
	pos := at
	first := true
	for {
		line, err := r.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			pos += int64(len(line))
			line, err = r.ReadSlice('\n')
		}
		pos += int64(len(line))
		if err == io.EOF {
			return size, nil
		}
		if err != nil {
			return 0, err
		}
		if jsonl {
			return pos, nil
		}
		// The first line read may be the tail of a line: it does not count.
		if !first && len(bytes.TrimSpace(line)) == 0 {
			return pos, nil
		}
		first = false
	}
}

type builder struct {
	dir  string
	plan *plan
	opts BuildOptions
	eos  int
	sft  *tokenize.SFTBuilder

	mu       sync.Mutex
	progress Progress
}

func unitName(i int) string { return fmt.Sprintf("%05d", i) }

func (b *builder) recordPath(i int) string {
	return filepath.Join(b.dir, "build", unitName(i)+".json")
}

// finished reads unit i's completion record and checks its shard files;
// nil when the unit must be (re)built.
func (b *builder) finished(i int) *record {
	raw, err := os.ReadFile(b.recordPath(i))
	if err != nil {
		return nil
	}
	var rec record
	if json.Unmarshal(raw, &rec) != nil || rec.Shard.Name != unitName(i) {
		return nil
	}
	sizes := map[string]int64{".ids": rec.Shard.Tokens * int64(b.plan.DType.Size()), ".idx": (rec.Shard.Docs + 1) * 8}
	if b.plan.Type == TypeChat {
		sizes[".mask"] = rec.Shard.Tokens
	}
	for ext, want := range sizes {
		st, err := os.Stat(filepath.Join(b.dir, "shards", rec.Shard.Name+ext))
		if err != nil || st.Size() != want {
			return nil
		}
	}
	return &rec
}

func (b *builder) report(f func(*Progress)) {
	b.mu.Lock()
	f(&b.progress)
	p := b.progress
	b.mu.Unlock()
	if b.opts.Progress != nil {
		b.opts.Progress(p)
	}
}

func (b *builder) run(ctx context.Context) (*BuildResult, error) {
	units := b.plan.Units
	b.progress.Units = len(units)
	for _, u := range units {
		b.progress.Bytes += u.Length
	}
	var mine []int
	for i, u := range units {
		if b.finished(i) != nil {
			b.progress.UnitsDone++
			b.progress.BytesDone += u.Length
			b.progress.Resumed++
			continue
		}
		if i%b.opts.World == b.opts.Rank {
			mine = append(mine, i)
		}
	}
	for _, i := range mine {
		if err := ctx.Err(); err != nil {
			return &BuildResult{Progress: b.progress}, err
		}
		if err := b.buildUnit(ctx, i); err != nil {
			return &BuildResult{Progress: b.progress}, err
		}
		b.report(func(p *Progress) { p.UnitsDone++ })
	}
	b.progress.ThisRank = true
	m, err := b.finish()
	if m != nil {
		b.progress.AllRanks = true
	}
	b.report(func(*Progress) {})
	return &BuildResult{Manifest: m, Progress: b.progress}, err
}

// finish writes manifest.json when every unit is done; nil, nil when some
// are missing.
func (b *builder) finish() (*Manifest, error) {
	m := &Manifest{Format: Format, Version: Version, Type: b.plan.Type, DType: b.plan.DType, Tokenizer: b.plan.Tokenizer, Shards: []Shard{}}
	for _, s := range b.plan.Sources {
		m.Sources = append(m.Sources, Source{Path: s.Path, Size: s.Size})
	}
	for i := range b.plan.Units {
		rec := b.finished(i)
		if rec == nil {
			return nil, nil
		}
		m.Shards = append(m.Shards, rec.Shard)
		m.Docs += rec.Shard.Docs
		m.Tokens += rec.Shard.Tokens
		m.Trained += rec.Shard.Trained
		m.Skipped.TooLong += rec.Skipped.TooLong
		m.Skipped.NoTrainable += rec.Skipped.NoTrainable
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	raw, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, err
	}
	return m, writeAtomic(filepath.Join(b.dir, "manifest.json"), append(raw, '\n'))
}

// encoded is one document's (or sequence's) tokens.
type encoded struct {
	ids     []int
	mask    []byte // chat only
	skipped int    // 1: too long, 2: nothing trained
}

// job is a batch of documents in file order; the workers fill out.
type job struct {
	texts   []string
	samples []corpus.Sample
	out     []encoded
	err     error
	done    chan struct{}
}

const batchDocs = 256

func (b *builder) buildUnit(ctx context.Context, i int) (err error) {
	u := b.plan.Units[i]
	src := b.plan.Sources[u.Source]
	name := unitName(i)
	w, err := newShardWriter(filepath.Join(b.dir, "shards", name), b.plan.DType, b.plan.Type == TypeChat)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			w.abort()
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	jobs := make(chan *job, 2*b.opts.Workers)
	ordered := make(chan *job, 2*b.opts.Workers)
	var wg sync.WaitGroup
	for range b.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				b.encode(j)
				close(j.done)
			}
		}()
	}
	hash := sha256.New()
	var readErr error
	go func() {
		defer close(ordered)
		defer close(jobs)
		readErr = b.readUnit(ctx, src.Path, u, hash, func(j *job) bool {
			j.done = make(chan struct{})
			select {
			case ordered <- j:
			case <-ctx.Done():
				return false
			}
			select {
			case jobs <- j:
				return true
			case <-ctx.Done():
				j.err = ctx.Err()
				close(j.done)
				return false
			}
		})
	}()
	var skipped Skipped
	for j := range ordered {
		<-j.done
		if j.err != nil && err == nil {
			err = fmt.Errorf("%s: %w", src.Path, j.err)
			cancel()
		}
		if err != nil {
			continue
		}
		for _, e := range j.out {
			switch e.skipped {
			case 1:
				skipped.TooLong++
				continue
			case 2:
				skipped.NoTrainable++
				continue
			}
			if werr := w.add(e.ids, e.mask); werr != nil {
				err = werr
				cancel()
				break
			}
		}
		n := int64(len(j.out))
		var t int64
		for _, e := range j.out {
			t += int64(len(e.ids))
		}
		b.report(func(p *Progress) { p.Docs += n; p.Tokens += t })
	}
	wg.Wait()
	if err == nil && readErr != nil {
		err = readErr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return err
	}
	sh, err := w.close()
	if err != nil {
		return err
	}
	sh.Name, sh.Source, sh.Offset, sh.Length = name, u.Source, u.Offset, u.Length
	sh.SHA256 = hex.EncodeToString(hash.Sum(nil))
	raw, err := json.Marshal(record{Shard: sh, Skipped: skipped})
	if err != nil {
		return err
	}
	if err := writeAtomic(b.recordPath(i), raw); err != nil {
		return err
	}
	b.report(func(p *Progress) { p.BytesDone += u.Length })
	return nil
}

// readUnit reads unit u's documents in batches and hands each to send;
// every byte read goes through hash.
func (b *builder) readUnit(ctx context.Context, path string, u planUnit, hash io.Writer, send func(*job) bool) error {
	if b.plan.Type == TypeChat {
		// The corpus reader opens the file itself; the hash reads it once more.
		if err := hashFile(path, hash); err != nil {
			return err
		}
		j := &job{}
		for s, err := range corpus.ReadSamples(ctx, path, corpus.Options{}) {
			if err != nil {
				return err
			}
			j.samples = append(j.samples, s)
			if len(j.samples) == batchDocs {
				if !send(j) {
					return ctx.Err()
				}
				j = &job{}
			}
		}
		if len(j.samples) > 0 && !send(j) {
			return ctx.Err()
		}
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := io.TeeReader(io.NewSectionReader(f, u.Offset, u.Length), hash)
	j := &job{}
	tr := corpus.NewTextReader(r, path, corpus.TextFormatOf(path))
	tr.Offset = u.Offset
	for doc, err := range tr.Documents(ctx) {
		if err != nil {
			return err
		}
		j.texts = append(j.texts, doc.Text)
		if len(j.texts) == batchDocs {
			if !send(j) {
				return ctx.Err()
			}
			j = &job{}
		}
	}
	if len(j.texts) > 0 && !send(j) {
		return ctx.Err()
	}
	return nil
}

func hashFile(path string, h io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(h, f)
	return err
}

func (b *builder) encode(j *job) {
	if j.texts != nil {
		j.out = make([]encoded, len(j.texts))
		for k, t := range j.texts {
			ids := b.opts.Tokenizer.Encode(t, true)
			if len(ids) == 0 || ids[len(ids)-1] != b.eos {
				ids = append(ids, b.eos)
			}
			j.out[k].ids = ids
		}
		return
	}
	j.out = make([]encoded, len(j.samples))
	for k := range j.samples {
		seq, err := b.sft.Build(&j.samples[k])
		switch {
		case errors.Is(err, tokenize.ErrTooLong):
			j.out[k].skipped = 1
			continue
		case errors.Is(err, tokenize.ErrNoTrainableTokens):
			j.out[k].skipped = 2
			continue
		case err != nil:
			j.err = err
			return
		}
		mask := make([]byte, len(seq.Labels))
		for t, l := range seq.Labels {
			if l != tokenize.IgnoreIndex {
				mask[t] = 1
			}
		}
		j.out[k] = encoded{ids: seq.IDs, mask: mask}
	}
}

// shardWriter writes one shard under temporary names; close renames them.
type shardWriter struct {
	hash  hash.Hash // of the ids
	base  string
	dtype DType
	files []*os.File
	ids   *bufio.Writer
	idx   *bufio.Writer
	mask  *bufio.Writer
	sh    Shard
	buf   [8]byte
}

var tmpSeq atomic.Int64

func newShardWriter(base string, dtype DType, withMask bool) (*shardWriter, error) {
	w := &shardWriter{base: base, dtype: dtype, hash: sha256.New()}
	exts := []string{".ids", ".idx"}
	if withMask {
		exts = append(exts, ".mask")
	}
	suffix := ".tmp" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(tmpSeq.Add(1), 10)
	for _, ext := range exts {
		f, err := os.Create(base + ext + suffix)
		if err != nil {
			w.abort()
			return nil, err
		}
		w.files = append(w.files, f)
	}
	w.ids = bufio.NewWriterSize(io.MultiWriter(w.files[0], w.hash), 1<<20)
	w.idx = bufio.NewWriterSize(w.files[1], 1<<16)
	if withMask {
		w.mask = bufio.NewWriterSize(w.files[2], 1<<18)
	}
	binary.LittleEndian.PutUint64(w.buf[:], 0)
	w.idx.Write(w.buf[:])
	return w, nil
}

func (w *shardWriter) add(ids []int, mask []byte) error {
	var b [4]byte
	for _, id := range ids {
		if id < 0 || (w.dtype == Uint16 && id >= 1<<16) || int64(id) >= 1<<32 {
			return fmt.Errorf("tokstore: token id %d does not fit %s", id, w.dtype)
		}
		if w.dtype == Uint16 {
			binary.LittleEndian.PutUint16(b[:], uint16(id))
			w.ids.Write(b[:2])
		} else {
			binary.LittleEndian.PutUint32(b[:], uint32(id))
			w.ids.Write(b[:])
		}
	}
	w.sh.Tokens += int64(len(ids))
	w.sh.Docs++
	binary.LittleEndian.PutUint64(w.buf[:], uint64(w.sh.Tokens))
	w.idx.Write(w.buf[:])
	if w.mask != nil {
		w.mask.Write(mask)
		for _, m := range mask {
			w.sh.Trained += int64(m)
		}
	}
	return nil
}

func (w *shardWriter) close() (Shard, error) {
	for _, bw := range []*bufio.Writer{w.ids, w.idx, w.mask} {
		if bw != nil {
			if err := bw.Flush(); err != nil {
				w.abort()
				return Shard{}, err
			}
		}
	}
	exts := []string{".ids", ".idx", ".mask"}
	for k, f := range w.files {
		if err := f.Close(); err != nil {
			w.abort()
			return Shard{}, err
		}
		if err := os.Rename(f.Name(), w.base+exts[k]); err != nil {
			w.abort()
			return Shard{}, err
		}
	}
	w.files = nil
	w.sh.IDsSHA256 = hex.EncodeToString(w.hash.Sum(nil))
	return w.sh, nil
}

func (w *shardWriter) abort() {
	for _, f := range w.files {
		f.Close()
		os.Remove(f.Name())
	}
	w.files = nil
}
