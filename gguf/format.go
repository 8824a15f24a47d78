package gguf

import "fmt"

// Magic is "GGUF" read as a little-endian uint32; Version is the format
// version written (3, the current one; 2 is read too).
const (
	Magic   uint32 = 0x46554747
	Version uint32 = 3
	// DefaultAlignment is the tensor data alignment when general.alignment
	// is absent.
	DefaultAlignment = 32
	// QuantVersion is ggml's GGML_QNT_VERSION, written as
	// general.quantization_version.
	QuantVersion = 2
)

// ValueType is the type tag of a metadata value.
type ValueType uint32

// The metadata value types of the GGUF specification.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

// TensorType is a ggml tensor element type.
type TensorType uint32

// The ggml types pltune writes (and reads back).
const (
	F32  TensorType = 0
	F16  TensorType = 1
	Q8_0 TensorType = 8
	BF16 TensorType = 30
)

// Q8Block is the number of values in one Q8_0 block; a block is stored as
// an fp16 scale followed by Q8Block int8s.
const Q8Block = 32

func (t TensorType) String() string {
	switch t {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case Q8_0:
		return "Q8_0"
	case BF16:
		return "BF16"
	}
	return fmt.Sprintf("ggml type %d", uint32(t))
}

// ParseTensorType maps the CLI spelling (f32, f16, bf16, q8_0) to a type.
func ParseTensorType(s string) (TensorType, error) {
	switch s {
	case "f32", "F32":
		return F32, nil
	case "f16", "F16":
		return F16, nil
	case "bf16", "BF16":
		return BF16, nil
	case "q8_0", "Q8_0":
		return Q8_0, nil
	}
	return 0, fmt.Errorf("gguf: type %q is not supported; want f32, f16, bf16 or q8_0", s)
}

// RowBytes is the size of one row of n values of type t, or an error when
// t cannot hold such a row (Q8_0 needs a multiple of 32).
func (t TensorType) RowBytes(n int64) (int64, error) {
	switch t {
	case F32:
		return 4 * n, nil
	case F16, BF16:
		return 2 * n, nil
	case Q8_0:
		if n%Q8Block != 0 {
			return 0, fmt.Errorf("gguf: a Q8_0 row needs a multiple of %d values, got %d", Q8Block, n)
		}
		return n / Q8Block * (2 + Q8Block), nil
	}
	return 0, fmt.Errorf("gguf: %v is not supported", t)
}

// FileType is general.file_type for a model whose matrices are of type t
// (llama.cpp's LLAMA_FTYPE_*: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16).
func (t TensorType) FileType() uint32 {
	switch t {
	case F16:
		return 1
	case Q8_0:
		return 7
	case BF16:
		return 32
	}
	return 0
}

// TensorInfo describes one tensor of a GGUF file. Dims are in ggml order:
// Dims[0] is the innermost (contiguous) dimension, the reverse of PyTorch's
// shape.
type TensorInfo struct {
	Name   string
	Dims   []int64
	Type   TensorType
	Offset uint64 // from the start of the data section
}

// NumElements is the product of the dimensions.
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Bytes is the size of the tensor's data.
func (t TensorInfo) Bytes() (int64, error) {
	if len(t.Dims) == 0 {
		return t.Type.RowBytes(1)
	}
	row, err := t.Type.RowBytes(t.Dims[0])
	if err != nil {
		return 0, err
	}
	return row * (t.NumElements() / max(t.Dims[0], 1)), nil
}
