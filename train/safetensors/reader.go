package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MaxHeaderSize caps the JSON header length (bytes) a reader accepts, so a
// hostile length field cannot make it allocate gigabytes. It is the limit of
// the reference implementation.
const MaxHeaderSize = 100_000_000

// DType is a safetensors element type, spelled as in the header ("BF16").
type DType string

// The element types of the safetensors specification.
const (
	Bool    DType = "BOOL"
	U8      DType = "U8"
	I8      DType = "I8"
	F8E5M2  DType = "F8_E5M2"
	F8E4M3  DType = "F8_E4M3"
	I16     DType = "I16"
	U16     DType = "U16"
	F16     DType = "F16"
	BF16    DType = "BF16"
	I32     DType = "I32"
	U32     DType = "U32"
	F32     DType = "F32"
	F64     DType = "F64"
	I64     DType = "I64"
	U64     DType = "U64"
	metaKey       = "__metadata__"
)

var dtypeSizes = map[DType]int64{
	Bool: 1, U8: 1, I8: 1, F8E5M2: 1, F8E4M3: 1,
	I16: 2, U16: 2, F16: 2, BF16: 2,
	I32: 4, U32: 4, F32: 4,
	F64: 8, I64: 8, U64: 8,
}

// Size is the number of bytes of one element, or 0 for an unknown type.
func (d DType) Size() int64 { return dtypeSizes[d] }

// Tensor describes one tensor of a file: name, element type and shape.
type Tensor struct {
	Name  string
	DType DType
	Shape []int64
}

// NumElements is the product of the shape (1 for a scalar).
func (t Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Bytes is the size of the tensor's data.
func (t Tensor) Bytes() int64 { return t.NumElements() * t.DType.Size() }

// TensorInfo is a Tensor as found in a file, with its byte range relative to
// the start of the data buffer.
type TensorInfo struct {
	Tensor
	Begin, End int64
}

// FormatError reports a malformed file: which file, which tensor (when one
// is at fault) and what is wrong.
type FormatError struct {
	File   string
	Tensor string
	Msg    string
}

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("safetensors: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Tensor != "" {
		fmt.Fprintf(&b, "tensor %q: ", e.Tensor)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrNotFound is returned (wrapped) when a tensor name is not in a file or set.
var ErrNotFound = errors.New("tensor not found")

// File is an opened safetensors file. Its methods are safe for concurrent
// use when the underlying io.ReaderAt is.
type File struct {
	// Metadata is the header's free-form "__metadata__" map (may be nil).
	Metadata map[string]string

	name      string
	r         io.ReaderAt
	closer    io.Closer
	dataStart int64
	infos     map[string]TensorInfo
	order     []string
}

// Open parses and validates the header of a safetensors file of the given
// size read through r. name is used in error messages only.
func Open(r io.ReaderAt, size int64, name string) (*File, error) {
	ferr := func(tensor, format string, a ...any) error {
		return &FormatError{File: name, Tensor: tensor, Msg: fmt.Sprintf(format, a...)}
	}
	if size < 8 {
		return nil, ferr("", "file is %d bytes; a safetensors file starts with an 8-byte header length", size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading header length: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, ferr("", "header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, ferr("", "header length %d runs past the end of the %d-byte file", n, size)
	}
	header := make([]byte, n)
	if _, err := r.ReadAt(header, 8); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading header: %w", name, err)
	}
	f := &File{name: name, r: r, dataStart: 8 + int64(n)}
	if err := f.parseHeader(header, size-f.dataStart); err != nil {
		return nil, err
	}
	return f, nil
}

// OpenFile opens the safetensors file at path; Close releases it.
func OpenFile(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := Open(fd, st.Size(), path)
	if err != nil {
		fd.Close()
		return nil, err
	}
	f.closer = fd
	return f, nil
}

// Close closes the file opened by OpenFile; it is a no-op for Open.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

type rawInfo struct {
	DType       DType    `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

func (f *File) parseHeader(header []byte, dataLen int64) error {
	ferr := func(tensor, format string, a ...any) error {
		return &FormatError{File: f.name, Tensor: tensor, Msg: fmt.Sprintf(format, a...)}
	}
	trimmed := bytes.TrimRight(header, " ")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ferr("", "header is not a JSON object")
	}
	// The header is decoded key by key so duplicate names are caught; a
	// plain map decode would keep the last one silently.
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if _, err := dec.Token(); err != nil {
		return ferr("", "header: %v", err)
	}
	f.infos = map[string]TensorInfo{}
	seenMeta := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ferr("", "header: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return ferr("", "header: expected a tensor name, found %v", tok)
		}
		if key == metaKey {
			if seenMeta {
				return ferr("", "header: duplicate %s", metaKey)
			}
			seenMeta = true
			if err := dec.Decode(&f.Metadata); err != nil {
				return ferr("", "header: %s: want an object of strings: %v", metaKey, err)
			}
			continue
		}
		if _, dup := f.infos[key]; dup {
			return ferr(key, "listed twice in the header")
		}
		var ri rawInfo
		if err := dec.Decode(&ri); err != nil {
			return ferr(key, "header entry: %v", err)
		}
		info, err := checkInfo(key, ri, dataLen)
		if err != nil {
			return ferr(key, "%v", err)
		}
		f.infos[key] = info
	}
	if _, err := dec.Token(); err != nil {
		return ferr("", "header: %v", err)
	}
	if dec.More() {
		return ferr("", "header: data after the JSON object")
	}
	if rest, _ := io.ReadAll(dec.Buffered()); len(bytes.TrimSpace(rest)) != 0 {
		return ferr("", "header: data after the JSON object")
	}
	f.order = make([]string, 0, len(f.infos))
	for k := range f.infos {
		f.order = append(f.order, k)
	}
	slices.SortFunc(f.order, func(a, b string) int {
		ia, ib := f.infos[a], f.infos[b]
		if ia.Begin != ib.Begin {
			return cmpInt(ia.Begin, ib.Begin)
		}
		return cmpInt(ia.End, ib.End)
	})
	// Ranges must tile [0, dataLen): sorted by start, each begins where the
	// previous ended. Zero-sized tensors sit anywhere on that chain.
	var pos int64
	for _, k := range f.order {
		info := f.infos[k]
		if info.Begin != pos {
			if info.Begin < pos {
				return ferr(k, "bytes [%d, %d) overlap the previous tensor, which ends at %d", info.Begin, info.End, pos)
			}
			return ferr(k, "bytes [%d, %d) leave a gap after offset %d", info.Begin, info.End, pos)
		}
		pos = info.End
	}
	if pos != dataLen {
		return ferr("", "tensors cover %d of the %d data bytes", pos, dataLen)
	}
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func checkInfo(name string, ri rawInfo, dataLen int64) (TensorInfo, error) {
	if name == "" {
		return TensorInfo{}, errors.New("empty tensor name")
	}
	es := ri.DType.Size()
	if es == 0 {
		return TensorInfo{}, fmt.Errorf("unknown dtype %q", ri.DType)
	}
	if len(ri.DataOffsets) != 2 {
		return TensorInfo{}, fmt.Errorf("data_offsets has %d values; want [begin, end]", len(ri.DataOffsets))
	}
	begin, end := ri.DataOffsets[0], ri.DataOffsets[1]
	if begin > end {
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] end before they begin", begin, end)
	}
	if end > uint64(dataLen) {
		return TensorInfo{}, fmt.Errorf("data_offsets [%d, %d] run past the %d-byte data buffer", begin, end, dataLen)
	}
	n := uint64(es)
	for _, d := range ri.Shape {
		if d < 0 {
			return TensorInfo{}, fmt.Errorf("negative dimension in shape %v", ri.Shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > uint64(dataLen) {
			return TensorInfo{}, fmt.Errorf("shape %v of %s is larger than the %d-byte data buffer", ri.Shape, ri.DType, dataLen)
		}
		n = lo
	}
	if n != end-begin {
		return TensorInfo{}, fmt.Errorf("shape %v of %s needs %d bytes but data_offsets [%d, %d] hold %d", ri.Shape, ri.DType, n, begin, end, end-begin)
	}
	shape := ri.Shape
	if shape == nil {
		shape = []int64{}
	}
	return TensorInfo{Tensor: Tensor{Name: name, DType: ri.DType, Shape: shape}, Begin: int64(begin), End: int64(end)}, nil
}

// Name is the name given to Open (the path for OpenFile).
func (f *File) Name() string { return f.name }

// Names lists the tensors in the order of their data.
func (f *File) Names() []string { return slices.Clone(f.order) }

// Info describes the named tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	i, ok := f.infos[name]
	return i, ok
}

// Section returns a reader over the named tensor's raw little-endian bytes,
// for streaming a tensor too large to hold twice.
func (f *File) Section(name string) (*io.SectionReader, error) {
	i, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: %q: %w", f.name, name, ErrNotFound)
	}
	return io.NewSectionReader(f.r, f.dataStart+i.Begin, i.End-i.Begin), nil
}

// ReadRaw reads the named tensor's raw little-endian bytes into dst (grown
// when too small) and returns them.
func (f *File) ReadRaw(name string, dst []byte) ([]byte, error) {
	i, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: %q: %w", f.name, name, ErrNotFound)
	}
	n := int(i.End - i.Begin)
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	if n == 0 {
		return dst, nil
	}
	if _, err := f.r.ReadAt(dst, f.dataStart+i.Begin); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading %q: %w", f.name, name, err)
	}
	return dst, nil
}

// ReadRange reads elements [start, start+n) of the named tensor's
// row-major flattening as raw little-endian bytes into dst (grown when too
// small): a byte range of the file, so a process can load its slice of a
// tensor without reading the rest (ZeRO-3's sharded loading).
func (f *File) ReadRange(name string, start, n int64, dst []byte) ([]byte, error) {
	i, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: %q: %w", f.name, name, ErrNotFound)
	}
	if start < 0 || n < 0 || start+n > i.NumElements() {
		return nil, fmt.Errorf("safetensors: %s: %q: elements [%d, %d) outside its %d", f.name, name, start, start+n, i.NumElements())
	}
	es := i.DType.Size()
	size := int(n * es)
	if cap(dst) < size {
		dst = make([]byte, size)
	}
	dst = dst[:size]
	if size == 0 {
		return dst, nil
	}
	if _, err := f.r.ReadAt(dst, f.dataStart+i.Begin+start*es); err != nil {
		return nil, fmt.Errorf("safetensors: %s: reading %q[%d:%d]: %w", f.name, name, start, start+n, err)
	}
	return dst, nil
}

// ReadFloat32 reads the named tensor, which must be BF16, F16, F32 or F64,
// converted to float32.
func (f *File) ReadFloat32(name string) ([]float32, error) {
	i, ok := f.infos[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: %q: %w", f.name, name, ErrNotFound)
	}
	raw, err := f.ReadRaw(name, nil)
	if err != nil {
		return nil, err
	}
	out := make([]float32, i.NumElements())
	if err := DecodeFloat32(out, i.DType, raw); err != nil {
		return nil, fmt.Errorf("safetensors: %s: %q: %w", f.name, name, err)
	}
	return out, nil
}

// IndexFile is the name of a sharded checkpoint's index.
const IndexFile = "model.safetensors.index.json"

// SingleFile is the name of an unsharded checkpoint.
const SingleFile = "model.safetensors"

// Index is the JSON index of a sharded checkpoint.
type Index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// Set is a checkpoint made of one or more safetensors files, addressed by
// tensor name.
type Set struct {
	files []*File
	where map[string]*File
}

// OpenDir opens the checkpoint in dir: the shards listed by
// model.safetensors.index.json when present, model.safetensors otherwise.
func OpenDir(dir string) (*Set, error) {
	idxPath := filepath.Join(dir, IndexFile)
	data, err := os.ReadFile(idxPath)
	if errors.Is(err, os.ErrNotExist) {
		f, err := OpenFile(filepath.Join(dir, SingleFile))
		if err != nil {
			return nil, err
		}
		return NewSet(f), nil
	}
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var idx Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("safetensors: %s: %v", idxPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("safetensors: %s: weight_map is empty", idxPath)
	}
	var shards []string
	for name, shard := range idx.WeightMap {
		// Shard names come from the index: refuse anything that would
		// reach outside the checkpoint folder.
		if shard == "" || shard != filepath.Base(shard) || shard == "." || shard == ".." {
			return nil, fmt.Errorf("safetensors: %s: tensor %q: shard %q is not a file name in the checkpoint folder", idxPath, name, shard)
		}
		if !slices.Contains(shards, shard) {
			shards = append(shards, shard)
		}
	}
	slices.Sort(shards)
	byName := map[string]*File{}
	var files []*File
	for _, s := range shards {
		f, err := OpenFile(filepath.Join(dir, s))
		if err != nil {
			for _, o := range files {
				o.Close()
			}
			return nil, err
		}
		files = append(files, f)
		byName[s] = f
	}
	set := NewSet(files...)
	for name, shard := range idx.WeightMap {
		if set.where[name] != byName[shard] {
			set.Close()
			if set.where[name] == nil {
				return nil, fmt.Errorf("safetensors: %s: tensor %q is not in %s", idxPath, name, shard)
			}
			return nil, fmt.Errorf("safetensors: %s: tensor %q is in %s, not %s", idxPath, name, filepath.Base(set.where[name].name), shard)
		}
	}
	for name, f := range set.where {
		if _, ok := idx.WeightMap[name]; !ok {
			set.Close()
			return nil, fmt.Errorf("safetensors: %s: tensor %q is missing from the index", f.name, name)
		}
	}
	return set, nil
}

// NewSet addresses the tensors of files by name; Close closes the files.
// A name found in several files resolves to the last.
func NewSet(files ...*File) *Set {
	s := &Set{files: files, where: map[string]*File{}}
	for _, f := range files {
		for _, n := range f.order {
			s.where[n] = f
		}
	}
	return s
}

// Close closes every file of the set.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// Names lists every tensor of the set, sorted.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.where))
	for n := range s.where {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// File returns the file holding the named tensor.
func (s *Set) File(name string) (*File, bool) {
	f, ok := s.where[name]
	return f, ok
}

// Info describes the named tensor.
func (s *Set) Info(name string) (TensorInfo, bool) {
	f, ok := s.where[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// ReadRaw reads the named tensor's raw bytes into dst (grown when too small).
func (s *Set) ReadRaw(name string, dst []byte) ([]byte, error) {
	f, ok := s.where[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %q: %w", name, ErrNotFound)
	}
	return f.ReadRaw(name, dst)
}

// ReadRange reads elements [start, start+n) of the named tensor's raw
// bytes (File.ReadRange).
func (s *Set) ReadRange(name string, start, n int64, dst []byte) ([]byte, error) {
	f, ok := s.where[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %q: %w", name, ErrNotFound)
	}
	return f.ReadRange(name, start, n, dst)
}

// ReadFloat32 reads the named tensor converted to float32.
func (s *Set) ReadFloat32(name string) ([]float32, error) {
	f, ok := s.where[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %q: %w", name, ErrNotFound)
	}
	return f.ReadFloat32(name)
}
