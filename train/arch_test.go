package train

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// TestNewModelInitializerRange: NewModel draws projections and embeddings
// from normal(0, initializer_range) as transformers' _init_weights does,
// with the config's value, not a fixed 0.02.
func TestNewModelInitializerRange(t *testing.T) {
	for _, r := range []float64{0.02, 0.2} {
		cfg, err := ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"vocab_size":64,"hidden_size":64,
			"intermediate_size":96,"num_hidden_layers":1,"num_attention_heads":4,"initializer_range":` + strconv.FormatFloat(r, 'g', -1, 64) + `}`))
		if err != nil {
			t.Fatal(err)
		}
		m, err := NewModel(cfg, ModelOptions{Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m.NamedParameters() {
			v := values(p.T)
			var s float64
			for _, x := range v {
				s += float64(x) * float64(x)
			}
			std := math.Sqrt(s / float64(len(v)))
			want := r
			if strings.HasSuffix(p.Name, "norm.weight") {
				want = 1
			}
			// 4,096 draws or more: the estimate is within 5% of the
			// std with near certainty.
			if math.Abs(std-want) > 0.05*want {
				t.Errorf("initializer_range %g: %s has rms %g; want %g", r, p.Name, std, want)
			}
		}
		m.Drop()
	}
}

// TestArchitectureByModelType: the layers come from the file registered
// under the config's model_type, and the bound names are transformers'.
func TestArchitectureByModelType(t *testing.T) {
	for _, tt := range []struct {
		js   string
		want []string
	}{
		{`{"architectures":["MistralForCausalLM"],"model_type":"mistral","vocab_size":16,"hidden_size":16,"intermediate_size":8,
			"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1}`,
			[]string{"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight",
				"model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
				"model.layers.0.post_attention_layernorm.weight", "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
				"model.layers.0.mlp.down_proj.weight", "model.norm.weight", "lm_head.weight"}},
		{`{"architectures":["MixtralForCausalLM"],"vocab_size":16,"hidden_size":16,"intermediate_size":8,"tie_word_embeddings":true,
			"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"num_local_experts":2,"num_experts_per_tok":1}`,
			[]string{"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight",
				"model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
				"model.layers.0.post_attention_layernorm.weight", "model.layers.0.block_sparse_moe.gate.weight",
				"model.layers.0.block_sparse_moe.experts.0.w1.weight", "model.layers.0.block_sparse_moe.experts.0.w2.weight",
				"model.layers.0.block_sparse_moe.experts.0.w3.weight", "model.layers.0.block_sparse_moe.experts.1.w1.weight",
				"model.layers.0.block_sparse_moe.experts.1.w2.weight", "model.layers.0.block_sparse_moe.experts.1.w3.weight",
				"model.norm.weight"}},
	} {
		cfg, err := ParseConfig([]byte(tt.js))
		if err != nil {
			t.Fatal(err)
		}
		m, err := structure(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, b := range m.bindings() {
			got = append(got, b.name)
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s: bound names\n%s\nwant\n%s", cfg.ModelType, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
	cfg, err := ParseConfig([]byte(`{"architectures":["LlamaForCausalLM"],"vocab_size":16,"hidden_size":16,"intermediate_size":8,
		"num_hidden_layers":1,"num_attention_heads":2}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ModelType = "qwen2"
	if _, err := NewModel(cfg, ModelOptions{}); err == nil || !strings.Contains(err.Error(), `model_type "qwen2" is not supported`) {
		t.Errorf("unregistered model_type: %v", err)
	}
}
