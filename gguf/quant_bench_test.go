package gguf

import (
	"math/rand/v2"
	"testing"
)

func benchEncode(b *testing.B, t TensorType) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, 8192)
	for i := range src {
		src[i] = float32(rng.NormFloat64())
	}
	dst := make([]byte, 0, 4*len(src))
	b.SetBytes(int64(4 * len(src)))
	for b.Loop() {
		dst, _ = EncodeRow(dst[:0], t, src)
	}
}

func BenchmarkEncodeRowQ8_0(b *testing.B) { benchEncode(b, Q8_0) }
func BenchmarkEncodeRowF16(b *testing.B)  { benchEncode(b, F16) }
