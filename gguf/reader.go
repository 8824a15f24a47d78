package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
)

// File is a parsed GGUF file: metadata, tensor table and access to the
// tensor data through an io.ReaderAt.
type File struct {
	Version  uint32
	KV       []KV
	Tensors  []TensorInfo
	DataBase int64 // file offset of the data section
	r        io.ReaderAt
	size     int64
	closer   io.Closer
}

// FormatError reports a malformed file: where (byte offset) and what.
type FormatError struct {
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("gguf: malformed file at byte %d: %s", e.Offset, e.Msg)
}

// OpenFile opens and parses the GGUF file at path; Close releases it.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("gguf: %w", err)
	}
	g, err := Open(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	g.closer = f
	return g, nil
}

// Close closes the file opened by OpenFile.
func (f *File) Close() error {
	if f.closer != nil {
		return f.closer.Close()
	}
	return nil
}

// Open parses the header, metadata and tensor table of a GGUF file of the
// given size read through r. Every length is checked against the bytes left
// before anything is allocated for it.
func Open(r io.ReaderAt, size int64) (*File, error) {
	p := &parser{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16), size: size}
	magic := p.u32()
	if p.err == nil && magic != Magic {
		return nil, &FormatError{0, fmt.Sprintf("magic %#x is not GGUF", magic)}
	}
	f := &File{r: r, size: size}
	f.Version = p.u32()
	if p.err == nil && f.Version != 2 && f.Version != 3 {
		return nil, &FormatError{4, fmt.Sprintf("version %d is not supported (want 2 or 3)", f.Version)}
	}
	nt, nkv := p.u64(), p.u64()
	// A tensor entry takes at least 24 bytes, a metadata entry at least 12.
	if p.err == nil && (nt > uint64(p.left())/24 || nkv > uint64(p.left())/12) {
		return nil, &FormatError{8, fmt.Sprintf("%d tensors and %d metadata entries cannot fit in %d bytes", nt, nkv, size)}
	}
	align := int64(DefaultAlignment)
	for i := uint64(0); i < nkv && p.err == nil; i++ {
		at := p.pos
		key := p.str()
		v := p.value(ValueType(p.u32()), 0)
		if p.err != nil {
			break
		}
		if key == "general.alignment" {
			a, ok := v.(uint32)
			if !ok || a == 0 || a%8 != 0 {
				return nil, &FormatError{at, fmt.Sprintf("general.alignment %v is not a uint32 multiple of 8", v)}
			}
			align = int64(a)
		}
		f.KV = append(f.KV, KV{key, v})
	}
	names := map[string]bool{}
	for i := uint64(0); i < nt && p.err == nil; i++ {
		at := p.pos
		var t TensorInfo
		t.Name = p.str()
		nd := p.u32()
		if p.err == nil && nd > 4 {
			return nil, &FormatError{at, fmt.Sprintf("tensor %q has %d dimensions (ggml allows 4)", t.Name, nd)}
		}
		for range nd {
			d := p.u64()
			if p.err == nil && (d == 0 || d > 1<<40) {
				return nil, &FormatError{at, fmt.Sprintf("tensor %q has dimension %d", t.Name, d)}
			}
			t.Dims = append(t.Dims, int64(d))
		}
		t.Type = TensorType(p.u32())
		t.Offset = p.u64()
		if p.err != nil {
			break
		}
		if names[t.Name] {
			return nil, &FormatError{at, fmt.Sprintf("tensor %q listed twice", t.Name)}
		}
		names[t.Name] = true
		f.Tensors = append(f.Tensors, t)
	}
	if p.err != nil {
		return nil, p.err
	}
	f.DataBase = pad(p.pos, align)
	for _, t := range f.Tensors {
		n, err := t.Bytes()
		if err != nil {
			// Types this package does not decode are listed all the same.
			continue
		}
		if t.NumElements() > 1<<42 || t.Offset%uint64(align) != 0 || int64(t.Offset) < 0 || f.DataBase+int64(t.Offset)+n > size || f.DataBase+int64(t.Offset) < f.DataBase {
			return nil, &FormatError{f.DataBase, fmt.Sprintf("tensor %q (offset %d, %d bytes) lies outside the file or is misaligned", t.Name, t.Offset, n)}
		}
	}
	return f, nil
}

// Get returns the metadata value of key.
func (f *File) Get(key string) (any, bool) {
	for _, e := range f.KV {
		if e.Key == key {
			return e.Value, true
		}
	}
	return nil, false
}

// Tensor returns the table entry of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return TensorInfo{}, false
}

// ReadFloat32 reads the named tensor converted to float32 (ggml order: the
// first dimension is contiguous).
func (f *File) ReadFloat32(name string) ([]float32, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: no tensor %q", name)
	}
	n, err := t.Bytes()
	if err != nil {
		return nil, err
	}
	raw := make([]byte, n)
	if _, err := f.r.ReadAt(raw, f.DataBase+int64(t.Offset)); err != nil {
		return nil, fmt.Errorf("gguf: tensor %s: %w", name, err)
	}
	out := make([]float32, t.NumElements())
	if err := DecodeRow(out, t.Type, raw); err != nil {
		return nil, fmt.Errorf("gguf: tensor %s: %w", name, err)
	}
	return out, nil
}

type parser struct {
	r    *bufio.Reader
	pos  int64
	size int64
	err  error
	buf  [8]byte
}

func (p *parser) left() int64 { return p.size - p.pos }

func (p *parser) fail(msg string) {
	if p.err == nil {
		p.err = &FormatError{p.pos, msg}
	}
}

func (p *parser) read(n int) []byte {
	if p.err != nil {
		return p.buf[:n]
	}
	if int64(n) > p.left() {
		p.fail("unexpected end of file")
		return p.buf[:n]
	}
	if _, err := io.ReadFull(p.r, p.buf[:n]); err != nil {
		p.fail(err.Error())
	}
	p.pos += int64(n)
	return p.buf[:n]
}

func (p *parser) u8() uint8   { return p.read(1)[0] }
func (p *parser) u16() uint16 { return binary.LittleEndian.Uint16(p.read(2)) }
func (p *parser) u32() uint32 { return binary.LittleEndian.Uint32(p.read(4)) }
func (p *parser) u64() uint64 { return binary.LittleEndian.Uint64(p.read(8)) }

func (p *parser) str() string {
	n := p.u64()
	if p.err != nil {
		return ""
	}
	if n > uint64(p.left()) {
		p.fail(fmt.Sprintf("string of %d bytes runs past the end of the file", n))
		return ""
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(p.r, b); err != nil {
		p.fail(err.Error())
		return ""
	}
	p.pos += int64(n)
	return string(b)
}

// minSize is the fewest bytes a value of type t occupies.
func minSize(t ValueType) int64 {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	}
	return 8 // 64-bit values, strings (length), arrays (tag + count, at least)
}

func (p *parser) value(t ValueType, depth int) any {
	if p.err != nil {
		return nil
	}
	switch t {
	case TypeUint8:
		return p.u8()
	case TypeInt8:
		return int8(p.u8())
	case TypeUint16:
		return p.u16()
	case TypeInt16:
		return int16(p.u16())
	case TypeUint32:
		return p.u32()
	case TypeInt32:
		return int32(p.u32())
	case TypeUint64:
		return p.u64()
	case TypeInt64:
		return int64(p.u64())
	case TypeFloat32:
		return math.Float32frombits(p.u32())
	case TypeFloat64:
		return math.Float64frombits(p.u64())
	case TypeBool:
		b := p.u8()
		if b > 1 {
			p.fail(fmt.Sprintf("bool value %d", b))
		}
		return b == 1
	case TypeString:
		return p.str()
	case TypeArray:
		if depth > 2 {
			p.fail("arrays nested too deep")
			return nil
		}
		et := ValueType(p.u32())
		n := p.u64()
		if p.err != nil {
			return nil
		}
		if et > TypeFloat64 {
			p.fail(fmt.Sprintf("array element type %d is unknown", et))
			return nil
		}
		if n > uint64(p.left()/minSize(et)) {
			p.fail(fmt.Sprintf("array of %d elements runs past the end of the file", n))
			return nil
		}
		return p.array(et, int(n), depth)
	}
	p.fail(fmt.Sprintf("value type %d is unknown", t))
	return nil
}

func (p *parser) array(et ValueType, n, depth int) any {
	switch et {
	case TypeString:
		return collect[string](p, et, n, depth)
	case TypeFloat32:
		return collect[float32](p, et, n, depth)
	case TypeInt32:
		return collect[int32](p, et, n, depth)
	case TypeUint32:
		return collect[uint32](p, et, n, depth)
	case TypeInt64:
		return collect[int64](p, et, n, depth)
	case TypeUint8:
		return collect[uint8](p, et, n, depth)
	case TypeBool:
		return collect[bool](p, et, n, depth)
	}
	return collect[any](p, et, n, depth)
}

func collect[T any](p *parser, et ValueType, n, depth int) []T {
	out := make([]T, 0, n)
	for range n {
		v := p.value(et, depth+1)
		if p.err != nil {
			return nil
		}
		x, _ := v.(T)
		out = append(out, x)
	}
	return out
}
