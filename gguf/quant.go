package gguf

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/pltune/pltune/train/safetensors"
)

// EncodeRow appends the values of src, converted to type t, to dst.
// F16 and BF16 round to nearest even as PyTorch and numpy do; Q8_0 follows
// ggml's quantize_row_q8_0_ref: per block of 32, d = max|x| / 127, each
// value round(x / d) (half away from zero), d stored as fp16.
func EncodeRow(dst []byte, t TensorType, src []float32) ([]byte, error) {
	switch t {
	case F32:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case F16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, safetensors.Float32ToF16(v))
		}
	case BF16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, safetensors.Float32ToBF16(v))
		}
	case Q8_0:
		if len(src)%Q8Block != 0 {
			return dst, fmt.Errorf("gguf: a Q8_0 row needs a multiple of %d values, got %d", Q8Block, len(src))
		}
		n := len(src) / Q8Block * (2 + Q8Block)
		if cap(dst)-len(dst) < n {
			dst = append(make([]byte, 0, len(dst)+n), dst...)
		}
		out := dst[len(dst) : len(dst)+n]
		dst = dst[:len(dst)+n]
		for b := 0; b < len(src); b += Q8Block {
			block := (*[Q8Block]float32)(src[b : b+Q8Block])
			o := (*[2 + Q8Block]byte)(out[b/Q8Block*(2+Q8Block):])
			var amax float32
			for _, v := range block {
				amax = max(amax, abs32(v))
			}
			d := amax / 127
			var id float32
			if d != 0 {
				id = 1 / d
			}
			binary.LittleEndian.PutUint16(o[:2], safetensors.Float32ToF16(d))
			for i, v := range block {
				o[2+i] = byte(roundAway8(v * id))
			}
		}
	default:
		return dst, fmt.Errorf("gguf: cannot write %v", t)
	}
	return dst, nil
}

// roundAway8 is C's roundf (halves away from zero) for |x| ≤ 127.5, as an
// int8, without branches: x ± 0.5 (the sign of x) is exact in float64 for
// any float32 x, so truncating it rounds exactly as roundf does.
func roundAway8(x float32) int8 {
	t := float64(x)
	half := math.Float64frombits(0x3fe0000000000000 | math.Float64bits(t)&(1<<63))
	return int8(int32(t + half))
}

func abs32(x float32) float32 {
	return math.Float32frombits(math.Float32bits(x) &^ (1 << 31))
}

// DecodeRow converts data of type t into dst (len(dst) values).
func DecodeRow(dst []float32, t TensorType, data []byte) error {
	n := int64(len(dst))
	want, err := t.RowBytes(n)
	if err != nil {
		return err
	}
	if int64(len(data)) != want {
		return fmt.Errorf("gguf: %d values of %v need %d bytes, got %d", n, t, want, len(data))
	}
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = safetensors.F16ToFloat32(binary.LittleEndian.Uint16(data[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = safetensors.BF16ToFloat32(binary.LittleEndian.Uint16(data[2*i:]))
		}
	case Q8_0:
		for b := range len(dst) / Q8Block {
			blk := data[b*(2+Q8Block):]
			d := safetensors.F16ToFloat32(binary.LittleEndian.Uint16(blk))
			for j := range Q8Block {
				dst[b*Q8Block+j] = d * float32(int8(blk[2+j]))
			}
		}
	}
	return nil
}
