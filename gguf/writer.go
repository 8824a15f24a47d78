package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// KV is one metadata entry. Value is one of uint8, int8, uint16, int16,
// uint32, int32, uint64, int64, float32, float64, bool, string, or a slice
// of those (an array; []string, []float32, []int32 and []uint32 are the
// common ones).
type KV struct {
	Key   string
	Value any
}

// Writer streams a GGUF file: the header, metadata and tensor table are
// written up front from the tensor list, then each tensor's data in table
// order, so no tensor needs to be held whole.
type Writer struct {
	w      io.Writer
	infos  []TensorInfo
	sizes  []int64
	next   int
	pos    int64 // bytes written to w
	align  int64
	header int64 // where the data section starts
}

// NewWriter writes the header of a file holding tensors (Offset is filled
// in; data follows in the given order) and the metadata kv. A
// general.alignment entry in kv sets the alignment.
func NewWriter(w io.Writer, kv []KV, tensors []TensorInfo) (*Writer, error) {
	gw := &Writer{w: w, align: DefaultAlignment}
	seen := map[string]bool{}
	for _, e := range kv {
		if seen[e.Key] {
			return nil, fmt.Errorf("gguf: metadata key %q given twice", e.Key)
		}
		seen[e.Key] = true
		if e.Key == "general.alignment" {
			a, ok := e.Value.(uint32)
			if !ok || a == 0 || a%8 != 0 {
				return nil, fmt.Errorf("gguf: general.alignment must be a uint32 multiple of 8, got %v", e.Value)
			}
			gw.align = int64(a)
		}
	}
	var off int64
	names := map[string]bool{}
	for _, t := range tensors {
		if names[t.Name] {
			return nil, fmt.Errorf("gguf: tensor %q given twice", t.Name)
		}
		names[t.Name] = true
		n, err := t.Bytes()
		if err != nil {
			return nil, fmt.Errorf("gguf: tensor %s: %w", t.Name, err)
		}
		t.Offset = uint64(off)
		gw.infos = append(gw.infos, t)
		gw.sizes = append(gw.sizes, n)
		off += pad(n, gw.align)
	}
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, Magic)
	b = binary.LittleEndian.AppendUint32(b, Version)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(tensors)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(kv)))
	for _, e := range kv {
		b = appendString(b, e.Key)
		var err error
		if b, err = appendValue(b, e.Value, true); err != nil {
			return nil, fmt.Errorf("gguf: metadata %s: %w", e.Key, err)
		}
	}
	for _, t := range gw.infos {
		b = appendString(b, t.Name)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t.Dims)))
		for _, d := range t.Dims {
			b = binary.LittleEndian.AppendUint64(b, uint64(d))
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(t.Type))
		b = binary.LittleEndian.AppendUint64(b, t.Offset)
	}
	b = append(b, make([]byte, pad(int64(len(b)), gw.align)-int64(len(b)))...)
	if _, err := w.Write(b); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	gw.pos = int64(len(b))
	gw.header = gw.pos
	return gw, nil
}

// Tensors is the tensor table as written (with offsets).
func (w *Writer) Tensors() []TensorInfo { return w.infos }

// WriteTensor writes the data of the next tensor, which must be name:
// fill writes exactly its size in bytes to the writer it is given.
func (w *Writer) WriteTensor(name string, fill func(io.Writer) error) error {
	if w.next >= len(w.infos) {
		return fmt.Errorf("gguf: tensor %s: every tensor of the table is written already", name)
	}
	t, want := w.infos[w.next], w.sizes[w.next]
	if t.Name != name {
		return fmt.Errorf("gguf: tensor %s written where the table has %s next", name, t.Name)
	}
	cw := &countWriter{w: w.w}
	if err := fill(cw); err != nil {
		return fmt.Errorf("gguf: tensor %s: %w", name, err)
	}
	if cw.n != want {
		return fmt.Errorf("gguf: tensor %s: %d bytes written, its table entry needs %d", name, cw.n, want)
	}
	if p := pad(want, w.align) - want; p > 0 {
		if _, err := w.w.Write(make([]byte, p)); err != nil {
			return fmt.Errorf("gguf: %w", err)
		}
	}
	w.pos += pad(want, w.align)
	w.next++
	return nil
}

// Close checks that every tensor was written; it does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.next != len(w.infos) {
		return fmt.Errorf("gguf: %d of %d tensors written", w.next, len(w.infos))
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func pad(n, align int64) int64 { return (n + align - 1) / align * align }

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

var errValue = errors.New("unsupported value type")

// appendValue writes v, preceded by its type tag when tagged.
func appendValue(b []byte, v any, tagged bool) ([]byte, error) {
	tag := func(t ValueType) {
		if tagged {
			b = binary.LittleEndian.AppendUint32(b, uint32(t))
		}
	}
	le := binary.LittleEndian
	switch x := v.(type) {
	case uint8:
		tag(TypeUint8)
		b = append(b, x)
	case int8:
		tag(TypeInt8)
		b = append(b, byte(x))
	case uint16:
		tag(TypeUint16)
		b = le.AppendUint16(b, x)
	case int16:
		tag(TypeInt16)
		b = le.AppendUint16(b, uint16(x))
	case uint32:
		tag(TypeUint32)
		b = le.AppendUint32(b, x)
	case int32:
		tag(TypeInt32)
		b = le.AppendUint32(b, uint32(x))
	case uint64:
		tag(TypeUint64)
		b = le.AppendUint64(b, x)
	case int64:
		tag(TypeInt64)
		b = le.AppendUint64(b, uint64(x))
	case float32:
		tag(TypeFloat32)
		b = le.AppendUint32(b, math.Float32bits(x))
	case float64:
		tag(TypeFloat64)
		b = le.AppendUint64(b, math.Float64bits(x))
	case bool:
		tag(TypeBool)
		if x {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	case string:
		tag(TypeString)
		b = appendString(b, x)
	case []string:
		return appendArray(b, TypeString, x, tagged)
	case []float32:
		return appendArray(b, TypeFloat32, x, tagged)
	case []int32:
		return appendArray(b, TypeInt32, x, tagged)
	case []uint32:
		return appendArray(b, TypeUint32, x, tagged)
	case []int64:
		return appendArray(b, TypeInt64, x, tagged)
	case []uint8:
		return appendArray(b, TypeUint8, x, tagged)
	case []bool:
		return appendArray(b, TypeBool, x, tagged)
	default:
		return b, fmt.Errorf("%w %T", errValue, v)
	}
	return b, nil
}

func appendArray[T any](b []byte, elem ValueType, xs []T, tagged bool) ([]byte, error) {
	if tagged {
		b = binary.LittleEndian.AppendUint32(b, uint32(TypeArray))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(elem))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(xs)))
	for _, x := range xs {
		var err error
		if b, err = appendValue(b, any(x), false); err != nil {
			return b, err
		}
	}
	return b, nil
}
