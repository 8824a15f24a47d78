package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/pltune/pltune/train"
)

// generateBench measures batched greedy generation (Model.Generate: KV
// cache preallocated for prompt + new tokens, one forward call per token
// for the batch) of the ~1.1B Llama of the sft mode, random bf16 weights on
// CUDA, for each batch size of batchList: prompts of random ids and random
// lengths up to prompt tokens (left-padded), newTokens each, no stop id.
// It prints new tokens per second (after one warm-up call per batch size)
// and a scoring row: LogLikelihoods over the same prompts, tokens/s. With
// cpuOnly it runs a 1-layer model in fp32 (a smoke test of this program).
func generateBench(batchList string, prompt, newTokens, layers int, cpuOnly bool) error {
	opts := train.ModelOptions{Device: "cuda", DType: "bf16", Seed: 1}
	hidden, mlp, heads, kv := 2048, 5632, 32, 8
	if cpuOnly {
		opts = train.ModelOptions{Seed: 1}
		hidden, mlp, heads, kv, layers = 256, 688, 8, 2, 1
	} else if !train.CUDAAvailable() {
		return fmt.Errorf("no CUDA device")
	}
	var batches []int
	for _, s := range strings.Split(batchList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("-batches %q: want positive batch sizes", batchList)
		}
		batches = append(batches, n)
	}
	const vocab = 32000
	cfg, err := train.ParseConfig([]byte(fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"vocab_size":%d,
		"hidden_size":%d,"intermediate_size":%d,"num_hidden_layers":%d,"num_attention_heads":%d,
		"num_key_value_heads":%d,"max_position_embeddings":%d,"rms_norm_eps":1e-5,"torch_dtype":"bfloat16"}`,
		vocab, hidden, mlp, layers, heads, kv, prompt+newTokens)))
	if err != nil {
		return err
	}
	m, err := train.NewModel(cfg, opts)
	if err != nil {
		return err
	}
	defer m.Drop()
	r := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	gen := train.GenerateOptions{MaxNewTokens: newTokens, StopIDs: []int{}}
	for _, b := range batches {
		prompts := make([][]int, b)
		for i := range prompts {
			n := prompt/2 + r.IntN(prompt/2+1)
			for range max(1, n) {
				prompts[i] = append(prompts[i], 3+r.IntN(vocab-3))
			}
		}
		if _, err := m.Generate(ctx, prompts, train.GenerateOptions{MaxNewTokens: 4, StopIDs: []int{}}); err != nil {
			return err
		}
		t0 := time.Now()
		out, err := m.Generate(ctx, prompts, gen)
		if err != nil {
			return err
		}
		s := time.Since(t0).Seconds()
		var toks int
		for _, o := range out {
			toks += len(o)
		}
		fmt.Printf("generate %v %s batch %3d  prompts ≤%d  %d new tokens each  %.2f s  %.0f new tokens/s\n",
			m.Options().DType, m.Options().Device, b, prompt, newTokens, s, float64(toks)/s)

		ctxs, conts := make([][]int, b), make([][]int, b)
		var scored int
		for i, p := range prompts {
			ctxs[i], conts[i] = p[:1], append(p[1:], out[i]...)
			scored += len(conts[i])
		}
		if len(ctxs) > 0 && len(conts[0]) > 0 {
			t0 = time.Now()
			if _, err := m.LogLikelihoods(ctx, ctxs, conts); err != nil {
				return err
			}
			s = time.Since(t0).Seconds()
			fmt.Printf("score    %v %s batch %3d  %d tokens  %.2f s  %.0f tokens/s\n", m.Options().DType, m.Options().Device, b, scored, s, float64(scored)/s)
		}
	}
	return nil
}
