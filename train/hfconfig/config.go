// Package hfconfig reads and writes a decoder model's Hugging Face
// config.json (Llama, Mistral, Mixtral). It is pure Go, so tools that do not
// link libtorch (the GGUF exporter) share the training code's reading of a
// checkpoint; package train re-exports it.
package hfconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
)

// The architectures (config.json "architectures") pltune builds.
const (
	ArchLlama   = "LlamaForCausalLM"
	ArchMistral = "MistralForCausalLM"
	ArchMixtral = "MixtralForCausalLM"
)

// Config is a decoder model's Hugging Face config.json. The fields pltune
// uses are typed; every other key is kept as it was read so a saved model
// carries it unchanged.
type Config struct {
	Architecture          string  // one of ArchLlama, ArchMistral, ArchMixtral
	ModelType             string  // "llama", "mistral", "mixtral"
	VocabSize             int     // vocab_size
	HiddenSize            int     // hidden_size
	IntermediateSize      int     // intermediate_size (per expert for Mixtral)
	NumHiddenLayers       int     // num_hidden_layers
	NumAttentionHeads     int     // num_attention_heads
	NumKeyValueHeads      int     // num_key_value_heads; defaults to num_attention_heads
	HeadDim               int     // head_dim; defaults to hidden_size / num_attention_heads
	MaxPositionEmbeddings int     // max_position_embeddings
	RMSNormEps            float64 // rms_norm_eps
	RopeTheta             float64 // rope_theta
	RopeScaling           *RopeScaling
	TieWordEmbeddings     bool    // tie_word_embeddings
	InitializerRange      float64 // initializer_range: the std of NewModel's normal init
	// SlidingWindow limits attention to the last SlidingWindow positions
	// (Mistral); 0 means unlimited (config.json's null).
	SlidingWindow int
	// Mixtral routing.
	NumLocalExperts   int     // num_local_experts
	NumExpertsPerTok  int     // num_experts_per_tok
	RouterAuxLossCoef float64 // router_aux_loss_coef
	// OutputRouterLogits is transformers' output_router_logits: only when
	// set does a Mixtral pass compute the router's load-balancing loss and
	// training add RouterAuxLossCoef times it to the loss. Set it on a
	// loaded config to train with the loss.
	OutputRouterLogits bool
	BOSTokenID         *int   // bos_token_id
	EOSTokenIDs        []int  // eos_token_id: a number or a list
	TorchDType         string // torch_dtype, e.g. "bfloat16"

	raw map[string]json.RawMessage
}

// RopeScaling is config.json's rope_scaling. Only the "llama3" type (and
// "default", meaning none) is supported.
type RopeScaling struct {
	Type                          string  `json:"rope_type"`
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor"`
	HighFreqFactor                float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
}

// archModelTypes is the model_type of each architecture.
var archModelTypes = map[string]string{ArchLlama: "llama", ArchMistral: "mistral", ArchMixtral: "mixtral"}

// defaults are the values transformers' config classes (LlamaConfig,
// MistralConfig, MixtralConfig) take for keys config.json leaves out;
// TestDefaultsMatchTransformers checks them against the classes.
var defaults = map[string]struct {
	eps, theta    float64
	maxPositions  int
	slidingWindow int
	kvHeads       int // 0: num_attention_heads
	experts       int
	expertsPerTok int
	auxCoef       float64
}{
	// router_aux_loss_coef means nothing to a dense model; 0.001 there
	// too keeps one default whatever the type.
	"llama":   {eps: 1e-6, theta: 10000, maxPositions: 2048, auxCoef: 0.001},
	"mistral": {eps: 1e-6, theta: 10000, maxPositions: 4096 * 32, slidingWindow: 4096, kvHeads: 8, auxCoef: 0.001},
	"mixtral": {eps: 1e-5, theta: 1e6, maxPositions: 4096 * 32, kvHeads: 8, experts: 8, expertsPerTok: 2, auxCoef: 0.001},
}

// IsMoE reports whether the config describes a mixture of experts.
func (c *Config) IsMoE() bool { return c.Architecture == ArchMixtral }

// Load reads and validates a config.json file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates config.json contents.
func Parse(data []byte) (*Config, error) {
	c, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	return c, nil
}

func parseConfig(data []byte) (*Config, error) {
	wrap := fmt.Errorf
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, wrap("%v", err)
	}
	c := &Config{raw: raw}
	var archs []string
	if err := getField(raw, "architectures", &archs); err != nil {
		return nil, wrap("%v", err)
	}
	if len(archs) != 1 {
		return nil, wrap("architectures = %q; want exactly one of %s, %s, %s", archs, ArchLlama, ArchMistral, ArchMixtral)
	}
	c.Architecture = archs[0]
	modelType, ok := archModelTypes[c.Architecture]
	if !ok {
		return nil, wrap("architecture %q is not supported; want %s, %s or %s", c.Architecture, ArchLlama, ArchMistral, ArchMixtral)
	}
	c.ModelType = modelType
	if err := getField(raw, "model_type", &c.ModelType); err != nil {
		return nil, wrap("%v", err)
	}
	if c.ModelType != modelType {
		return nil, wrap("model_type %q does not match architectures %s; want %q", c.ModelType, c.Architecture, modelType)
	}
	d := defaults[c.ModelType]
	c.RMSNormEps, c.RopeTheta, c.MaxPositionEmbeddings = d.eps, d.theta, d.maxPositions
	c.SlidingWindow, c.InitializerRange = d.slidingWindow, 0.02
	c.NumLocalExperts, c.NumExpertsPerTok, c.RouterAuxLossCoef = d.experts, d.expertsPerTok, d.auxCoef
	// An absent num_key_value_heads takes the class default; null means
	// as many as the attention heads (as in transformers).
	if _, ok := raw["num_key_value_heads"]; !ok {
		c.NumKeyValueHeads = d.kvHeads
	}
	ints := []struct {
		key      string
		dst      *int
		required bool
	}{
		{"vocab_size", &c.VocabSize, true},
		{"hidden_size", &c.HiddenSize, true},
		{"intermediate_size", &c.IntermediateSize, true},
		{"num_hidden_layers", &c.NumHiddenLayers, true},
		{"num_attention_heads", &c.NumAttentionHeads, true},
		{"num_key_value_heads", &c.NumKeyValueHeads, false},
		{"head_dim", &c.HeadDim, false},
		{"max_position_embeddings", &c.MaxPositionEmbeddings, false},
		{"sliding_window", &c.SlidingWindow, false},
		{"num_local_experts", &c.NumLocalExperts, false},
		{"num_experts_per_tok", &c.NumExpertsPerTok, false},
	}
	for _, f := range ints {
		if _, ok := raw[f.key]; !ok {
			if f.required {
				return nil, wrap("%s is missing", f.key)
			}
			continue
		}
		if err := getField(raw, f.key, f.dst); err != nil {
			return nil, wrap("%v", err)
		}
	}
	if v, ok := raw["sliding_window"]; ok && bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		c.SlidingWindow = 0 // null: no window, whatever the class default
	}
	for _, f := range []struct {
		key string
		dst any
	}{
		{"rms_norm_eps", &c.RMSNormEps},
		{"initializer_range", &c.InitializerRange},
		{"output_router_logits", &c.OutputRouterLogits},
		{"rope_theta", &c.RopeTheta},
		{"tie_word_embeddings", &c.TieWordEmbeddings},
		{"router_aux_loss_coef", &c.RouterAuxLossCoef},
		{"bos_token_id", &c.BOSTokenID},
		{"torch_dtype", &c.TorchDType},
	} {
		if err := getField(raw, f.key, f.dst); err != nil {
			return nil, wrap("%v", err)
		}
	}
	if err := ParseEOS(raw["eos_token_id"], &c.EOSTokenIDs); err != nil {
		return nil, wrap("%v", err)
	}
	if err := parseRopeScaling("rope_scaling", raw["rope_scaling"], &c.RopeScaling); err != nil {
		return nil, wrap("%v", err)
	}
	// transformers 5 writes rope_parameters (rope_theta and the scaling
	// in one object) instead of rope_theta and rope_scaling, and dtype
	// instead of torch_dtype.
	if rp, ok := raw["rope_parameters"]; ok && !bytes.Equal(bytes.TrimSpace(rp), []byte("null")) {
		var p struct {
			Theta float64 `json:"rope_theta"`
		}
		if err := json.Unmarshal(rp, &p); err != nil {
			return nil, wrap("rope_parameters: %v", err)
		}
		if p.Theta != 0 {
			c.RopeTheta = p.Theta
		}
		if err := parseRopeScaling("rope_parameters", rp, &c.RopeScaling); err != nil {
			return nil, wrap("%v", err)
		}
	}
	if c.TorchDType == "" {
		if err := getField(raw, "dtype", &c.TorchDType); err != nil {
			return nil, wrap("%v", err)
		}
	}
	for _, key := range []string{"attention_bias", "mlp_bias"} {
		var b bool
		if err := getField(raw, key, &b); err != nil {
			return nil, wrap("%v", err)
		}
		if b {
			return nil, wrap("%s = true is not supported", key)
		}
	}
	var act string
	if err := getField(raw, "hidden_act", &act); err != nil {
		return nil, wrap("%v", err)
	}
	if act != "" && act != "silu" {
		return nil, wrap("hidden_act %q is not supported; want silu", act)
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		if c.HiddenSize%c.NumAttentionHeads != 0 {
			return nil, wrap("hidden_size %d is not divisible by num_attention_heads %d; set head_dim", c.HiddenSize, c.NumAttentionHeads)
		}
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func getField(raw map[string]json.RawMessage, key string, dst any) error {
	v, ok := raw[key]
	if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("%s: %s is not a valid value: %v", key, v, err)
	}
	return nil
}

// ParseEOS decodes an eos_token_id value: a token id or a list of ids
// (nothing for an absent or null value).
func ParseEOS(v json.RawMessage, dst *[]int) error {
	if len(v) == 0 || string(bytes.TrimSpace(v)) == "null" {
		return nil
	}
	var one int
	if err := json.Unmarshal(v, &one); err == nil {
		*dst = []int{one}
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("eos_token_id %s: want a token id or a list of ids", v)
	}
	return nil
}

func parseRopeScaling(key string, v json.RawMessage, dst **RopeScaling) error {
	if len(v) == 0 || string(bytes.TrimSpace(v)) == "null" {
		return nil
	}
	var rs struct {
		RopeScaling
		LegacyType string `json:"type"`
	}
	if err := json.Unmarshal(v, &rs); err != nil {
		return fmt.Errorf("%s: %v", key, err)
	}
	if rs.Type == "" {
		rs.Type = rs.LegacyType
	}
	switch rs.Type {
	case "default":
		return nil
	case "llama3":
		if rs.Factor <= 0 || rs.LowFreqFactor <= 0 || rs.HighFreqFactor <= rs.LowFreqFactor || rs.OriginalMaxPositionEmbeddings <= 0 {
			return fmt.Errorf("%s llama3 needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0; got %s", key, v)
		}
		*dst = &rs.RopeScaling
		return nil
	}
	return fmt.Errorf("%s type %q is not supported; want llama3", key, rs.Type)
}

// Validate checks the sizes against each other.
func (c *Config) Validate() error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

func (c *Config) validate() error {
	bad := fmt.Errorf
	for _, f := range []struct {
		name string
		v    int
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"num_key_value_heads", c.NumKeyValueHeads}, {"head_dim", c.HeadDim},
	} {
		if f.v <= 0 {
			return bad("%s = %d; want a positive number", f.name, f.v)
		}
	}
	// Bounds far above any released model keep a hostile config from
	// asking for absurd allocations.
	for _, f := range []struct {
		name string
		v    int
		max  int
	}{
		{"vocab_size", c.VocabSize, 1 << 24}, {"hidden_size", c.HiddenSize, 1 << 18},
		{"intermediate_size", c.IntermediateSize, 1 << 20}, {"num_hidden_layers", c.NumHiddenLayers, 1 << 12},
		{"num_attention_heads", c.NumAttentionHeads, 1 << 12}, {"head_dim", c.HeadDim, 1 << 14},
		{"num_local_experts", c.NumLocalExperts, 1 << 12},
	} {
		if f.v > f.max {
			return bad("%s = %d is beyond the supported %d", f.name, f.v, f.max)
		}
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return bad("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	if c.HeadDim%2 != 0 {
		return bad("head_dim %d is odd; rotary embeddings need an even size", c.HeadDim)
	}
	if c.SlidingWindow < 0 || c.MaxPositionEmbeddings < 0 {
		return bad("sliding_window and max_position_embeddings must not be negative")
	}
	if !(c.InitializerRange >= 0) || c.InitializerRange > 1 {
		return bad("initializer_range %g: want 0 to 1", c.InitializerRange)
	}
	if !(c.RMSNormEps > 0) || !(c.RopeTheta > 0) {
		return bad("rms_norm_eps (%g) and rope_theta (%g) must be positive", c.RMSNormEps, c.RopeTheta)
	}
	if c.RopeTheta > 1e15 {
		// Beyond this the slowest rotary frequencies underflow float32.
		return bad("rope_theta %g is beyond the supported 1e15", c.RopeTheta)
	}
	if c.IsMoE() {
		if c.NumLocalExperts <= 0 {
			return bad("num_local_experts = %d; a Mixtral model needs experts", c.NumLocalExperts)
		}
		if c.NumExpertsPerTok <= 0 || c.NumExpertsPerTok > c.NumLocalExperts {
			return bad("num_experts_per_tok = %d; want 1 to num_local_experts (%d)", c.NumExpertsPerTok, c.NumLocalExperts)
		}
	}
	for _, id := range c.EOSTokenIDs {
		if id < 0 || id >= c.VocabSize {
			return bad("eos_token_id %d is outside the vocabulary (%d)", id, c.VocabSize)
		}
	}
	return nil
}

// RopeInvFreq returns the rotary inverse frequencies (head_dim/2 values),
// with Llama-3 scaling applied when configured, computed as in Hugging Face
// transformers' rope initialisation.
func (c *Config) RopeInvFreq() []float64 {
	half := c.HeadDim / 2
	inv := make([]float64, half)
	for i := range inv {
		// transformers computes the exponent in float32 (arange(0, dim,
		// 2).float() / dim); keep that rounding.
		exp := float32(2*i) / float32(c.HeadDim)
		inv[i] = float64(float32(1.0 / math.Pow(c.RopeTheta, float64(exp))))
	}
	rs := c.RopeScaling
	if rs == nil {
		return inv
	}
	old := float64(rs.OriginalMaxPositionEmbeddings)
	lowWave, highWave := old/rs.LowFreqFactor, old/rs.HighFreqFactor
	for i, f := range inv {
		wave := 2 * math.Pi / f
		switch {
		case wave < highWave:
		case wave > lowWave:
			inv[i] = f / rs.Factor
		default:
			smooth := (old/wave - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
			inv[i] = (1-smooth)*f/rs.Factor + smooth*f
		}
	}
	return inv
}

// MarshalJSON writes the config as config.json: every key read is kept,
// the typed fields override theirs.
func (c *Config) MarshalJSON() ([]byte, error) {
	out := make(map[string]any, len(c.raw)+20)
	for k, v := range c.raw {
		out[k] = v
	}
	out["architectures"] = []string{c.Architecture}
	out["model_type"] = c.ModelType
	out["vocab_size"] = c.VocabSize
	out["hidden_size"] = c.HiddenSize
	out["intermediate_size"] = c.IntermediateSize
	out["num_hidden_layers"] = c.NumHiddenLayers
	out["num_attention_heads"] = c.NumAttentionHeads
	out["num_key_value_heads"] = c.NumKeyValueHeads
	out["head_dim"] = c.HeadDim
	out["rms_norm_eps"] = c.RMSNormEps
	out["rope_theta"] = c.RopeTheta
	out["tie_word_embeddings"] = c.TieWordEmbeddings
	out["initializer_range"] = c.InitializerRange
	out["hidden_act"] = "silu"
	if c.MaxPositionEmbeddings > 0 {
		out["max_position_embeddings"] = c.MaxPositionEmbeddings
	}
	rope := map[string]any{"rope_type": "default"}
	if c.RopeScaling != nil {
		rs := *c.RopeScaling
		rope = map[string]any{
			"rope_type": rs.Type, "factor": rs.Factor, "low_freq_factor": rs.LowFreqFactor,
			"high_freq_factor": rs.HighFreqFactor, "original_max_position_embeddings": rs.OriginalMaxPositionEmbeddings,
		}
		out["rope_scaling"] = maps.Clone(rope)
	}
	// A transformers 5 config keeps its rope_parameters, agreeing with
	// the rope_theta and rope_scaling older readers take.
	if _, ok := out["rope_parameters"]; ok {
		rope["rope_theta"] = c.RopeTheta
		out["rope_parameters"] = rope
	}
	if c.SlidingWindow > 0 {
		out["sliding_window"] = c.SlidingWindow
	} else if _, ok := out["sliding_window"]; ok || defaults[c.ModelType].slidingWindow > 0 {
		// null, not absent: an absent key reads as the class default.
		out["sliding_window"] = nil
	}
	if c.IsMoE() {
		out["num_local_experts"] = c.NumLocalExperts
		out["num_experts_per_tok"] = c.NumExpertsPerTok
		out["router_aux_loss_coef"] = c.RouterAuxLossCoef
		out["output_router_logits"] = c.OutputRouterLogits
	}
	if c.BOSTokenID != nil {
		out["bos_token_id"] = *c.BOSTokenID
	}
	switch len(c.EOSTokenIDs) {
	case 0:
	case 1:
		out["eos_token_id"] = c.EOSTokenIDs[0]
	default:
		out["eos_token_id"] = slices.Clone(c.EOSTokenIDs)
	}
	if c.TorchDType != "" {
		out["torch_dtype"] = c.TorchDType
		if _, ok := out["dtype"]; ok {
			out["dtype"] = c.TorchDType
		}
	}
	return json.MarshalIndent(out, "", "  ")
}
