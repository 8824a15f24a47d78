package hfconfig

import (
	"encoding/json"
	"testing"
)

// A config.json as transformers 5 saves it: rope_theta and the llama3
// scaling inside rope_parameters, dtype for torch_dtype.
const transformers5Llama = `{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":100,
"hidden_size":64,"intermediate_size":96,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
"head_dim":16,"dtype":"float32","rope_parameters":{"factor":8.0,"high_freq_factor":4.0,"low_freq_factor":1.0,
"original_max_position_embeddings":64,"rope_theta":500000.0,"rope_type":"llama3"}}`

func TestTransformers5RopeParameters(t *testing.T) {
	c, err := Parse([]byte(transformers5Llama))
	if err != nil {
		t.Fatal(err)
	}
	if c.RopeTheta != 500000 || c.RopeScaling == nil || c.RopeScaling.Factor != 8 || c.RopeScaling.OriginalMaxPositionEmbeddings != 64 || c.TorchDType != "float32" {
		t.Fatalf("parsed rope_theta %g, scaling %+v, dtype %q", c.RopeTheta, c.RopeScaling, c.TorchDType)
	}
	js, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		RopeTheta float64        `json:"rope_theta"`
		Params    map[string]any `json:"rope_parameters"`
		DType     string         `json:"dtype"`
	}
	if err := json.Unmarshal(js, &out); err != nil {
		t.Fatal(err)
	}
	if out.RopeTheta != 500000 || out.Params["rope_theta"] != 500000.0 || out.Params["rope_type"] != "llama3" || out.DType != "float32" {
		t.Errorf("written config disagrees with itself: %s", js)
	}
	again, err := Parse(js)
	if err != nil || again.RopeTheta != 500000 || *again.RopeScaling != *c.RopeScaling {
		t.Errorf("round trip: %v %+v", err, again)
	}

	bad := `{"architectures":["LlamaForCausalLM"],"vocab_size":100,"hidden_size":64,"intermediate_size":96,
"num_hidden_layers":2,"num_attention_heads":4,"rope_parameters":{"rope_type":"yarn","factor":4}}`
	if _, err := Parse([]byte(bad)); err == nil {
		t.Error("rope_parameters of type yarn accepted")
	}
}
