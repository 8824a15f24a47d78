// Command gguf writes a random-weight Llama checkpoint for the GGUF export
// benchmark (mkmodel DIR) or exports one with the library (export DIR OUT
// TYPE), printing the time. bench/gguf/run.sh compares it with llama.cpp's
// convert_hf_to_gguf.py on the same folder.
package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/pltune/pltune/gguf"
	"github.com/pltune/pltune/gguf/export"
	"github.com/pltune/pltune/train/safetensors"
)

// Llama-3.2-1B's shapes (1.24 B parameters, tied embeddings), bf16.
const config = `{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":128256,"hidden_size":2048,
"intermediate_size":8192,"num_hidden_layers":16,"num_attention_heads":32,"num_key_value_heads":8,"head_dim":64,
"max_position_embeddings":131072,"rms_norm_eps":1e-5,"rope_theta":500000,"rope_scaling":{"rope_type":"llama3","factor":32,
"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192},"tie_word_embeddings":true,
"bos_token_id":128000,"eos_token_id":128009,"torch_dtype":"bfloat16"}`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench/gguf:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 3 && args[0] == "mkmodel":
		return mkmodel(args[1], args[2])
	case len(args) == 4 && args[0] == "export":
		t, err := gguf.ParseTensorType(args[3])
		if err != nil {
			return err
		}
		if path := os.Getenv("PLTUNE_CPUPROFILE"); path != "" {
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			defer f.Close()
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		start := time.Now()
		res, err := export.Export(context.Background(), args[1], args[2], export.Options{Type: t})
		if err != nil {
			return err
		}
		fmt.Printf("pltune export %s: %.2f s, %d bytes\n", args[3], time.Since(start).Seconds(), res.Bytes)
		return nil
	}
	return fmt.Errorf("usage: gguf mkmodel DIR TOKENIZER_DIR | gguf export DIR OUT TYPE")
}

func mkmodel(dir, tokDir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(tokDir, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
		return err
	}
	const V, D, I, L, Q, KV = 128256, 2048, 8192, 16, 32 * 64, 8 * 64
	var srcs []safetensors.Source
	seed := uint64(0)
	add := func(name string, shape ...int64) {
		seed++
		s := seed
		srcs = append(srcs, safetensors.Source{
			Tensor: safetensors.Tensor{Name: name, DType: safetensors.BF16, Shape: shape},
			Data: func() ([]byte, error) {
				n := int64(1)
				for _, d := range shape {
					n *= d
				}
				rng := rand.New(rand.NewPCG(s, 7))
				vals := make([]float32, n)
				for i := range vals {
					vals[i] = float32(rng.NormFloat64() * 0.02)
				}
				return safetensors.EncodeFloat32(nil, safetensors.BF16, vals)
			},
		})
	}
	add("model.embed_tokens.weight", V, D)
	for l := 0; l < L; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", D)
		add(p+"self_attn.q_proj.weight", Q, D)
		add(p+"self_attn.k_proj.weight", KV, D)
		add(p+"self_attn.v_proj.weight", KV, D)
		add(p+"self_attn.o_proj.weight", D, Q)
		add(p+"post_attention_layernorm.weight", D)
		add(p+"mlp.gate_proj.weight", I, D)
		add(p+"mlp.up_proj.weight", I, D)
		add(p+"mlp.down_proj.weight", D, I)
	}
	add("model.norm.weight", D)
	_, err := safetensors.WriteSharded(dir, srcs, 2<<30, map[string]string{"format": "pt"})
	return err
}
