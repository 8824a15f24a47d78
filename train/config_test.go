package train

import (
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/train/safetensors"
)

func TestLoadConfigReference(t *testing.T) {
	tests := []struct {
		dir  string
		want Config
	}{
		{"llama", Config{Architecture: ArchLlama, ModelType: "llama", VocabSize: 96, HiddenSize: 32, IntermediateSize: 48,
			NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 8, MaxPositionEmbeddings: 128,
			RMSNormEps: 1e-5, RopeTheta: 500000, TieWordEmbeddings: true, RouterAuxLossCoef: 0.001, InitializerRange: 0.02,
			RopeScaling: &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16},
			EOSTokenIDs: []int{2, 3}, TorchDType: "bfloat16"}},
		{"mistral", Config{Architecture: ArchMistral, ModelType: "mistral", VocabSize: 80, HiddenSize: 32, IntermediateSize: 40,
			NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 1, HeadDim: 12, MaxPositionEmbeddings: 128,
			RMSNormEps: 1e-5, RopeTheta: 1e6, SlidingWindow: 5, RouterAuxLossCoef: 0.001, InitializerRange: 0.02, EOSTokenIDs: []int{2}, TorchDType: "float16"}},
		{"mixtral", Config{Architecture: ArchMixtral, ModelType: "mixtral", VocabSize: 72, HiddenSize: 32, IntermediateSize: 24,
			NumHiddenLayers: 2, NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDim: 8, MaxPositionEmbeddings: 128,
			RMSNormEps: 1e-5, RopeTheta: 1e6, NumLocalExperts: 4, NumExpertsPerTok: 2, RouterAuxLossCoef: 0.02, OutputRouterLogits: true, InitializerRange: 0.02,
			EOSTokenIDs: []int{2}, TorchDType: "float32"}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			c, err := LoadConfig(filepath.Join("testdata", "ref", tt.dir, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if c.BOSTokenID == nil || *c.BOSTokenID != 1 {
				t.Errorf("bos_token_id = %v", c.BOSTokenID)
			}
			got := *c
			got.BOSTokenID = nil
			gj, _ := json.Marshal(struct{ C Config }{got})
			wj, _ := json.Marshal(struct{ C Config }{tt.want})
			if string(gj) != string(wj) {
				t.Errorf("config\n got %+v\nwant %+v", got, tt.want)
			}
			if !slices.Equal(got.EOSTokenIDs, tt.want.EOSTokenIDs) || (got.RopeScaling == nil) != (tt.want.RopeScaling == nil) ||
				got.RopeScaling != nil && *got.RopeScaling != *tt.want.RopeScaling || got.HeadDim != tt.want.HeadDim ||
				got.SlidingWindow != tt.want.SlidingWindow || got.NumLocalExperts != tt.want.NumLocalExperts ||
				got.RouterAuxLossCoef != tt.want.RouterAuxLossCoef || got.TieWordEmbeddings != tt.want.TieWordEmbeddings {
				t.Errorf("config\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestRopeInvFreqMatchesReference(t *testing.T) {
	for _, dir := range []string{"llama", "mistral", "mixtral"} {
		c, err := LoadConfig(filepath.Join("testdata", "ref", dir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := safetensors.OpenFile(filepath.Join("testdata", "ref", dir, "golden.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := f.ReadFloat32("rope.inv_freq")
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := c.RopeInvFreq()
		if len(got) != len(want) {
			t.Fatalf("%s: %d frequencies; want %d", dir, len(got), len(want))
		}
		for i := range got {
			if math.Abs(got[i]-float64(want[i])) > 1e-6*math.Abs(float64(want[i])) {
				t.Errorf("%s: inv_freq[%d] = %g; reference %g", dir, i, got[i], want[i])
			}
		}
	}
}

// Released configs parse, and the weight count built from the checkpoint
// tensor list matches the published parameter counts.
func TestReleasedConfigs(t *testing.T) {
	tests := []struct {
		name, json string
		params     int64
		headDim    int
	}{
		{"Llama-3.1-8B", `{"architectures":["LlamaForCausalLM"],"attention_bias":false,"attention_dropout":0.0,"bos_token_id":128000,"eos_token_id":128001,"hidden_act":"silu","hidden_size":4096,"initializer_range":0.02,"intermediate_size":14336,"max_position_embeddings":131072,"mlp_bias":false,"model_type":"llama","num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":8,"pretraining_tp":1,"rms_norm_eps":1e-05,"rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192,"rope_type":"llama3"},"rope_theta":500000.0,"tie_word_embeddings":false,"torch_dtype":"bfloat16","transformers_version":"4.43.0.dev0","use_cache":true,"vocab_size":128256}`,
			8_030_261_248, 128},
		{"Mistral-Nemo-Base-2407", `{"architectures":["MistralForCausalLM"],"attention_dropout":0.0,"bos_token_id":1,"eos_token_id":2,"head_dim":128,"hidden_act":"silu","hidden_size":5120,"initializer_range":0.02,"intermediate_size":14336,"max_position_embeddings":1024000,"model_type":"mistral","num_attention_heads":32,"num_hidden_layers":40,"num_key_value_heads":8,"rms_norm_eps":1e-05,"rope_theta":1000000.0,"sliding_window":null,"tie_word_embeddings":false,"torch_dtype":"bfloat16","transformers_version":"4.43.0.dev0","use_cache":true,"vocab_size":131072}`,
			12_247_782_400, 128},
		{"Mixtral-8x7B-v0.1", `{"architectures":["MixtralForCausalLM"],"attention_dropout":0.0,"bos_token_id":1,"eos_token_id":2,"hidden_act":"silu","hidden_size":4096,"initializer_range":0.02,"intermediate_size":14336,"max_position_embeddings":32768,"model_type":"mixtral","num_attention_heads":32,"num_experts_per_tok":2,"num_hidden_layers":32,"num_key_value_heads":8,"num_local_experts":8,"output_router_logits":false,"rms_norm_eps":1e-05,"rope_theta":1e6,"router_aux_loss_coef":0.02,"sliding_window":null,"tie_word_embeddings":false,"torch_dtype":"bfloat16","transformers_version":"4.36.0.dev0","use_cache":true,"vocab_size":32000}`,
			46_702_792_704, 128},
	}
	for _, tt := range tests {
		c, err := ParseConfig([]byte(tt.json))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got, err := numParameters(c); err != nil || got != tt.params {
			t.Errorf("%s: %d parameters; published %d", tt.name, got, tt.params)
		}
		if c.HeadDim != tt.headDim || c.SlidingWindow != 0 {
			t.Errorf("%s: head_dim %d, sliding window %d", tt.name, c.HeadDim, c.SlidingWindow)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := `"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2`
	tests := []struct {
		name, json, want string
	}{
		{"not json", `{`, "unexpected end"},
		{"no arch", `{` + base + `}`, "architectures"},
		{"unknown arch", `{"architectures":["GPT2LMHeadModel"],` + base + `}`, `"GPT2LMHeadModel" is not supported`},
		{"missing size", `{"architectures":["LlamaForCausalLM"],"vocab_size":10}`, "hidden_size is missing"},
		{"bad kv heads", `{"architectures":["LlamaForCausalLM"],` + base + `,"num_key_value_heads":3}`, "not a multiple of num_key_value_heads 3"},
		{"indivisible", `{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":9,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}`, "set head_dim"},
		{"string size", `{"architectures":["LlamaForCausalLM"],` + base + `,"head_dim":"8"}`, "head_dim"},
		{"rope yarn", `{"architectures":["LlamaForCausalLM"],` + base + `,"rope_scaling":{"rope_type":"yarn","factor":2}}`, `"yarn" is not supported`},
		{"rope llama3 incomplete", `{"architectures":["LlamaForCausalLM"],` + base + `,"rope_scaling":{"rope_type":"llama3","factor":8}}`, "llama3 needs"},
		{"moe without experts", `{"architectures":["MixtralForCausalLM"],` + base + `,"num_key_value_heads":1,"num_local_experts":0}`, "num_local_experts"},
		{"too many per token", `{"architectures":["MixtralForCausalLM"],` + base + `,"num_key_value_heads":1,"num_local_experts":2,"num_experts_per_tok":3}`, "num_experts_per_tok = 3"},
		{"eos outside", `{"architectures":["LlamaForCausalLM"],` + base + `,"eos_token_id":[1,99]}`, "eos_token_id 99"},
		{"eos string", `{"architectures":["LlamaForCausalLM"],` + base + `,"eos_token_id":"</s>"}`, "eos_token_id"},
		{"bias", `{"architectures":["LlamaForCausalLM"],` + base + `,"attention_bias":true}`, "attention_bias"},
		{"gelu", `{"architectures":["LlamaForCausalLM"],` + base + `,"hidden_act":"gelu"}`, `"gelu" is not supported`},
		{"absurd head_dim", `{"architectures":["LlamaForCausalLM"],` + base + `,"head_dim":1099511627776}`, "head_dim = 1099511627776 is beyond"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "train: config.json: ") {
				t.Errorf("error %v; want one containing %q", err, tt.want)
			}
		})
	}
}

func TestConfigRoundTripKeepsUnknownKeys(t *testing.T) {
	in := `{"architectures":["MistralForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,
		"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":null,"sliding_window":null,"transformers_version":"4.44.0","eos_token_id":2}`
	c, err := ParseConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	c.EOSTokenIDs = []int{2, 5}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(out, &m)
	if m["transformers_version"] != "4.44.0" || m["head_dim"] != float64(4) || m["num_key_value_heads"] != float64(2) {
		t.Errorf("saved config %s", out)
	}
	if v, ok := m["sliding_window"]; !ok || v != nil {
		t.Errorf("sliding_window = %v, %v; want null kept", v, ok)
	}
	back, err := ParseConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.EOSTokenIDs, []int{2, 5}) || back.HeadDim != 4 {
		t.Errorf("round trip: %+v", back)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}`))
	f.Add([]byte(`{"architectures":["MixtralForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"num_local_experts":2,"num_experts_per_tok":1,"rope_scaling":{"type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":16}}`))
	f.Add([]byte(`{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":1,"rope_theta":1e300}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if c.HeadDim <= 0 || c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
			t.Fatalf("accepted config with head_dim %d, heads %d/%d", c.HeadDim, c.NumAttentionHeads, c.NumKeyValueHeads)
		}
		if _, err := json.Marshal(c); err != nil {
			t.Fatal(err)
		}
		for i, f := range c.RopeInvFreq() {
			if !(f > 0) || math.IsInf(f, 0) {
				t.Fatalf("inv_freq[%d] = %g for %s", i, f, data)
			}
		}
	})
}
