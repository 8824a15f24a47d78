package gguf

import (
	"math/rand/v2"
	"testing"
)

func benchEncode(b *testing.B, t TensorType, scale float64) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, 8192)
	for i := range src {
		src[i] = float32(rng.NormFloat64() * scale)
	}
	dst := make([]byte, 0, 4*len(src))
	b.SetBytes(int64(4 * len(src)))
	for b.Loop() {
		dst, _ = EncodeRow(dst[:0], t, src)
	}
}

func BenchmarkEncodeRowQ8_0(b *testing.B)      { benchEncode(b, Q8_0, 1) }
func BenchmarkEncodeRowQ8_0Small(b *testing.B) { benchEncode(b, Q8_0, 0.02) }
func BenchmarkEncodeRowF16(b *testing.B)       { benchEncode(b, F16, 1) }

func BenchmarkEncodeRowQ8_0Large(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, 2<<20)
	for i := range src {
		src[i] = float32(rng.NormFloat64() * 0.02)
	}
	dst := make([]byte, 0, len(src))
	b.SetBytes(int64(4 * len(src)))
	for b.Loop() {
		for r := 0; r < len(src); r += 2048 {
			dst, _ = EncodeRow(dst[:0], Q8_0, src[r:r+2048])
		}
	}
}
