package train

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/pltune/pltune/internal/torchx"
	"github.com/sugarme/gotch/ts"
)

// rowTensor is ids as a [1, len] int64 tensor on the host.
func rowTensor(ids []int) *ts.Tensor {
	v := make([]int64, len(ids))
	for i, id := range ids {
		v[i] = int64(id)
	}
	return ts.MustOfSlice(v).MustView([]int64{1, int64(len(v))}, true)
}

// lastLogits is the no-cache forward's logits at the last position of ids
// alone.
func lastLogits(t *testing.T, m *Model, ids []int) []float32 {
	t.Helper()
	in := rowTensor(ids)
	defer in.MustDrop()
	out, err := m.Forward(in, ForwardOptions{LastOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Drop()
	return values(out.Logits)
}

// mhaOrRef is the reference model name, or for "mha" a random Llama whose
// key/value heads are its query heads (no GQA repeat: attention reads the
// cache's strided views directly).
func mhaOrRef(t *testing.T, name string) *Model {
	t.Helper()
	if name != "mha" {
		return loadRef(t, name)
	}
	cfg, err := ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"vocab_size":96,"hidden_size":32,
		"intermediate_size":48,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":4,
		"max_position_embeddings":128,"rms_norm_eps":1e-5}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(cfg, ModelOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Drop)
	return m
}

// Cached decoding must give, step by step, the logits of the forward pass
// without a cache over the whole sequence so far, for a left-padded batch
// of prompts of different lengths; with a cache sized for the run its
// buffers are allocated once and written in place, and a cache without a
// size grows and gives the same logits.
func TestCachedDecodingEqualsFullForward(t *testing.T) {
	const atol = 1e-4
	prompts := [][]int{{5, 9, 14, 3, 22, 7, 1}, {7, 8}, {40, 41, 42, 43}}
	// Teacher-forced continuations: the same ids for every row.
	steps := []int{11, 60, 2, 33, 33, 70, 4, 17}
	B, L := len(prompts), 7
	for _, name := range append(slices.Clone(refModels), "mha") {
		for _, sized := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/sized=%v", name, sized), func(t *testing.T) {
				m := mhaOrRef(t, name)
				V := m.Config.VocabSize
				torchx.NoGrad(func() {
					cache := NewKVCache()
					if sized {
						cache = NewKVCacheFor(L + len(steps))
					}
					defer cache.Drop()
					ids := make([]int64, B*L)
					mask := make([]int64, B*L)
					for b, p := range prompts {
						for j, id := range p {
							ids[b*L+L-len(p)+j] = int64(id)
							mask[b*L+L-len(p)+j] = 1
						}
					}
					in := ts.MustOfSlice(ids).MustView([]int64{int64(B), int64(L)}, true)
					am := ts.MustOfSlice(mask).MustView([]int64{int64(B), int64(L)}, true)
					fo := ForwardOptions{Cache: cache, LastOnly: true, AttentionMask: am}
					var buf *ts.Tensor
					for s := 0; s <= len(steps); s++ {
						out, err := m.Forward(in, fo)
						in.MustDrop()
						if fo.AttentionMask != nil {
							fo.AttentionMask.MustDrop()
							fo.AttentionMask = nil
						}
						if err != nil {
							t.Fatal(err)
						}
						got := values(out.Logits)
						out.Drop()
						for b, p := range prompts {
							seq := append(append([]int{}, p...), steps[:s]...)
							want := lastLogits(t, m, seq)
							var d float64
							for j := range V {
								d = max(d, math.Abs(float64(got[b*V+j]-want[j])))
							}
							if d > atol {
								t.Fatalf("step %d, row %d: cached logits differ from the full forward by %.3g", s, b, d)
							}
						}
						if sized {
							if s == 0 {
								buf = cache.k[0]
							} else if cache.k[0] != buf || cache.Cap() != int64(L+len(steps)) {
								t.Fatalf("step %d: the sized cache was reallocated (capacity %d)", s, cache.Cap())
							}
						}
						if s < len(steps) {
							col := make([]int64, B)
							for b := range col {
								col[b] = int64(steps[s])
							}
							in = ts.MustOfSlice(col).MustView([]int64{int64(B), 1}, true)
						}
					}
					if cache.Len() != int64(L+len(steps)) || cache.Cap() < cache.Len() {
						t.Errorf("cache holds %d positions of capacity %d; want %d", cache.Len(), cache.Cap(), L+len(steps))
					}
				})
			})
		}
	}
}

// A batch of prompts of different lengths gives each prompt the tokens it
// gets alone, greedy and sampled, with a row that stops early while the
// others go on.
func TestGenerateBatchEqualsAlone(t *testing.T) {
	ctx := context.Background()
	prompts := [][]int{{5, 9, 14, 3, 22, 7, 1}, {7, 8}, {40}, {12, 13, 14, 15}}
	for _, name := range refModels {
		t.Run(name, func(t *testing.T) {
			m := loadRef(t, name)
			free, err := m.Generate(ctx, prompts[1:2], GenerateOptions{MaxNewTokens: 10, StopIDs: []int{}})
			if err != nil {
				t.Fatal(err)
			}
			// Prompt 1 stops at its third token; the others may stop too.
			stop := []int{free[0][2]}
			for _, opts := range []GenerateOptions{
				{MaxNewTokens: 10, StopIDs: stop},
				{MaxNewTokens: 10, StopIDs: stop, Temperature: 0.8, TopP: 0.9, Seed: 7},
				{MaxNewTokens: 10, StopIDs: stop, Temperature: 1.3, Seed: 8},
			} {
				batch, err := m.Generate(ctx, prompts, opts)
				if err != nil {
					t.Fatal(err)
				}
				lengths := map[int]bool{}
				for i, p := range prompts {
					alone, err := m.Generate(ctx, [][]int{p}, opts)
					if err != nil {
						t.Fatal(err)
					}
					if fmt.Sprint(batch[i]) != fmt.Sprint(alone[0]) {
						t.Errorf("temperature %g, prompt %d: batched %v; alone %v", opts.Temperature, i, batch[i], alone[0])
					}
					lengths[len(batch[i])] = true
				}
				if opts.Temperature == 0 && (len(batch[1]) > 2 || !lengths[10]) {
					t.Errorf("greedy: prompt 1 gave %v with stop %v; some row should run to 10 tokens: %v", batch[1], stop, batch)
				}
			}
		})
	}
}
