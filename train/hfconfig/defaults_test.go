package hfconfig

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pltune/pltune/internal/pyref"
)

// TestDefaultsMatchTransformers reads config.json files that leave out
// every optional key (and an explicit null window) with pltune and with
// transformers' AutoConfig, and wants the same values: the class defaults
// of LlamaConfig, MistralConfig (sliding_window 4096, 8 key-value heads)
// and MixtralConfig (8 experts, top 2, output_router_logits off).
func TestDefaultsMatchTransformers(t *testing.T) {
	py := pyref.Require(t)
	const sizes = `"vocab_size":100,"hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,"num_attention_heads":8`
	cases := map[string]string{
		"llama":         `{"architectures":["LlamaForCausalLM"],"model_type":"llama",` + sizes + `}`,
		"mistral":       `{"architectures":["MistralForCausalLM"],"model_type":"mistral",` + sizes + `}`,
		"mixtral":       `{"architectures":["MixtralForCausalLM"],"model_type":"mixtral",` + sizes + `}`,
		"mistral-nulls": `{"architectures":["MistralForCausalLM"],"model_type":"mistral",` + sizes + `,"sliding_window":null}`,
		"mixtral-set":   `{"architectures":["MixtralForCausalLM"],"model_type":"mixtral",` + sizes + `,"output_router_logits":true,"initializer_range":0.5,"sliding_window":16}`,
	}
	root := t.TempDir()
	args := []string{filepath.Join("testdata", "defaults.py")}
	for name, js := range cases {
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "config.json"), []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, d)
	}
	cmd := exec.Command(py, args...)
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_VERBOSITY=error")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("defaults.py: %v\n%s", err, stderr)
	}
	type values struct {
		RMSNormEps         float64  `json:"rms_norm_eps"`
		RopeTheta          float64  `json:"rope_theta"`
		MaxPositions       int      `json:"max_position_embeddings"`
		SlidingWindow      int      `json:"sliding_window"`
		InitializerRange   float64  `json:"initializer_range"`
		TieWordEmbeddings  bool     `json:"tie_word_embeddings"`
		KVHeads            int      `json:"num_key_value_heads"`
		HeadDim            int      `json:"head_dim"`
		Experts            int      `json:"num_local_experts"`
		ExpertsPerTok      int      `json:"num_experts_per_tok"`
		RouterAuxLossCoef  *float64 `json:"router_aux_loss_coef"`
		OutputRouterLogits bool     `json:"output_router_logits"`
	}
	var hf map[string]values
	if err := json.Unmarshal(out, &hf); err != nil {
		t.Fatalf("defaults.py printed %s: %v", out, err)
	}
	for name, js := range cases {
		c, err := Parse([]byte(js))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want := hf[filepath.Join(root, name)]
		got := values{
			RMSNormEps: c.RMSNormEps, RopeTheta: c.RopeTheta, MaxPositions: c.MaxPositionEmbeddings,
			SlidingWindow: c.SlidingWindow, InitializerRange: c.InitializerRange, TieWordEmbeddings: c.TieWordEmbeddings,
			KVHeads: c.NumKeyValueHeads, HeadDim: c.HeadDim, Experts: c.NumLocalExperts, ExpertsPerTok: c.NumExpertsPerTok,
			OutputRouterLogits: c.OutputRouterLogits, RouterAuxLossCoef: want.RouterAuxLossCoef,
		}
		if !c.IsMoE() {
			// Dense configs have no experts in transformers either.
			got.Experts, got.ExpertsPerTok = want.Experts, want.ExpertsPerTok
		} else if want.RouterAuxLossCoef == nil || *want.RouterAuxLossCoef != c.RouterAuxLossCoef {
			t.Errorf("%s: router_aux_loss_coef %g; transformers %v", name, c.RouterAuxLossCoef, want.RouterAuxLossCoef)
		}
		if got != want {
			t.Errorf("%s:\npltune       %+v\ntransformers %+v", name, got, want)
		}
		// A saved config reads back the same (a default window is not
		// lost to an absent key).
		js2, err := c.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(js2)
		if err != nil || back.SlidingWindow != c.SlidingWindow || back.NumKeyValueHeads != c.NumKeyValueHeads ||
			back.InitializerRange != c.InitializerRange || back.OutputRouterLogits != c.OutputRouterLogits {
			t.Errorf("%s: round trip %v: %s", name, err, js2)
		}
	}
}
