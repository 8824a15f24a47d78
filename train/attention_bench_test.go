package train

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// BenchmarkAttentionMemory measures one attention layer's forward and
// backward (the tiny Llama's shape: 8 heads, 2 key heads, head_dim 32,
// batch 1, fp32 CPU, a causal row with an all-ones attention mask as
// training passes it) for today's explicit attention with autograd, the
// blockwise path with autograd, the blockwise forward + manual backward
// without autograd, and SDPA where the linked libtorch has it, at 1,024,
// 4,096 and (the paths without O(T²) memory) 16,384 tokens. It reports
// the peak resident memory above what the inputs hold (peak-MB, from
// VmHWM after resetting it through /proc/self/clear_refs; the least over
// the iterations, so the first run's one-off allocations do not count)
// next to the time:
//
//	go test ./train -run '^$' -bench AttentionMemory -benchtime 3x
func BenchmarkAttentionMemory(b *testing.B) {
	const H, KV, hd = 8, 2, 32
	for _, T := range []int64{1024, 4096, 16384} {
		for _, path := range []string{"explicit", "block", "manual", "sdpa"} {
			b.Run(fmt.Sprintf("T=%d/%s", T, path), func(b *testing.B) {
				if path == "sdpa" && !sdpaAvailable() {
					b.Skip("no scaled_dot_product_attention in the linked libtorch")
				}
				if T > 4096 && (path == "explicit" || path == "block") {
					// 16,384² scores: about 25 GB explicit, 4.3 GB of
					// kept probabilities blockwise with autograd.
					b.Skip("keeps O(T²) memory; too large for this machine")
				}
				benchAttention(b, path, T, H, KV, hd)
			})
		}
	}
}

func benchAttention(b *testing.B, path string, T, H, KV, hd int64) {
	cfg, err := ParseConfig(fmt.Appendf(nil, `{"architectures":["LlamaForCausalLM"],"model_type":"llama",
		"vocab_size":16,"hidden_size":%d,"intermediate_size":8,"num_hidden_layers":1,
		"num_attention_heads":%d,"num_key_value_heads":%d,"max_position_embeddings":%d,"rms_norm_eps":1e-5}`, H*hd, H, KV, T))
	if err != nil {
		b.Fatal(err)
	}
	m, err := newSkeleton(cfg, ModelOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Drop()
	ones := ts.MustOnes([]int64{1, T}, gotch.Int64, gotch.CPU)
	defer ones.MustDrop()
	torchx.ManualSeed(1)
	leaf := func(h int64) *ts.Tensor {
		x := ts.MustRandn([]int64{1, h, T, hd}, gotch.Float, gotch.CPU)
		x.MustRequiresGrad_(true)
		return x
	}
	q, k, v := leaf(H), leaf(KV), leaf(KV)
	dOut := ts.MustRandn([]int64{1, H, T, hd}, gotch.Float, gotch.CPU)
	defer func() {
		for _, t := range []*ts.Tensor{q, k, v, dOut} {
			t.MustDrop()
		}
	}()
	scale := 1 / math.Sqrt(float64(hd))
	peak := int64(math.MaxInt64)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for _, t := range []*ts.Tensor{q, k, v} {
			g := t.MustGrad(false)
			if g.MustDefined() {
				g.MustZero_()
			}
			g.MustDrop()
		}
		// The mask is an input, built once for all layers: prepare's
		// [T, S] additive mask for today's attention, only the key mask
		// for the others.
		st := &fwdState{batch: 1, seq: T, keyMask: ones.MustNe(ts.IntScalar(0), false)}
		if path == "explicit" {
			st.keyMask.MustDrop()
			if st, err = m.prepare(1, T, ForwardOptions{AttentionMask: ones}); err != nil {
				b.Fatal(err)
			}
		}
		mask := newAttnMask(st, 0)
		torchx.ReleaseFreeMemory()
		base := resetPeakRSS(b)
		b.StartTimer()
		switch path {
		case "explicit":
			out := explicitAttention(q, k, v, st.mask, scale)
			if err := backwardWith([]*ts.Tensor{out}, []*ts.Tensor{dOut}); err != nil {
				b.Fatal(err)
			}
			out.MustDrop()
		case "block", "sdpa":
			var out *ts.Tensor
			if path == "block" {
				out = blockAttention(q, k, v, mask, scale, 0)
			} else if out, err = sdpaAttention(q, k, v, mask, scale, 0); err != nil {
				b.Fatal(err)
			}
			if err := backwardWith([]*ts.Tensor{out}, []*ts.Tensor{dOut}); err != nil {
				b.Fatal(err)
			}
			out.MustDrop()
		case "manual":
			o, lse := blockAttentionForward(q, k, v, mask, scale, 0)
			dq, dk, dv := blockAttentionBackward(q, k, v, o, lse, dOut, mask, scale, 0)
			for _, t := range []*ts.Tensor{o, lse, dq, dk, dv} {
				t.MustDrop()
			}
		}
		b.StopTimer()
		peak = min(peak, procStatusKB(b, "VmHWM:")-base)
		mask.drop()
		st.drop()
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/1024, "peak-MB")
}

// resetPeakRSS resets the process's VmHWM to its current RSS and returns
// that RSS in kB.
func resetPeakRSS(b *testing.B) int64 {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset the peak RSS: %v", err)
	}
	return procStatusKB(b, "VmRSS:")
}

func procStatusKB(b *testing.B, key string) int64 {
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	for _, l := range strings.Split(string(s), "\n") {
		if strings.HasPrefix(l, key) {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	b.Skipf("no %s in /proc/self/status", key)
	return 0
}
