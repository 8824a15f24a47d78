package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// BF16ToFloat32 widens a bfloat16 bit pattern; it is exact.
func BF16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBF16 narrows to bfloat16 rounding to nearest even, as PyTorch
// does; NaN stays NaN (quiet).
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// F16ToFloat32 widens an IEEE half-precision bit pattern; it is exact,
// subnormals included.
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal half: value = man * 2^-24, exact in float32.
	v := float32(man) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

// Float32ToF16 narrows to IEEE half precision rounding to nearest even;
// values beyond the half range become infinities, NaN stays NaN.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal (or zero) half: shift the full significand into
		// place and round on the bits shifted out.
		if e < -10 {
			return sign
		}
		m := man | 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		rest := m & (1<<shift - 1)
		r := m >> shift
		if rest > half || rest == half && r&1 == 1 {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | man>>13
	rest := man & 0x1fff
	if rest > 0x1000 || rest == 0x1000 && r&1 == 1 {
		r++ // a carry into the exponent is the correct rounding, up to inf
	}
	return sign | uint16(r)
}

// DecodeFloat32 converts little-endian elements of type dt (BF16, F16, F32
// or F64) from src into dst, which must hold exactly len(src)/dt.Size()
// values.
func DecodeFloat32(dst []float32, dt DType, src []byte) error {
	es := dt.Size()
	if es == 0 || int64(len(src)) != int64(len(dst))*es {
		return fmt.Errorf("cannot decode %d bytes of %q into %d float32 values", len(src), dt, len(dst))
	}
	switch dt {
	case BF16:
		for i := range dst {
			dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
		}
	default:
		return fmt.Errorf("dtype %s is not a floating-point type", dt)
	}
	return nil
}

// EncodeFloat32 converts src to little-endian elements of type dt (BF16,
// F16, F32 or F64), appending to dst.
func EncodeFloat32(dst []byte, dt DType, src []float32) ([]byte, error) {
	switch dt {
	case BF16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, Float32ToBF16(v))
		}
	case F16:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint16(dst, Float32ToF16(v))
		}
	case F32:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case F64:
		for _, v := range src {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(float64(v)))
		}
	default:
		return dst, fmt.Errorf("dtype %s is not a floating-point type", dt)
	}
	return dst, nil
}
