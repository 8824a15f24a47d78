package train

import "github.com/sugarme/gotch/ts"

// Llama and Mistral: the shared decoder with a gated MLP in every layer.
// Mistral differs only in config (sliding_window), which attention reads.

func init() {
	a := architecture{feedForward: func(c *Config) feedForward { return newGatedMLP(c) }}
	register("llama", a)
	register("mistral", a)
}

// gatedMLP is LlamaMLP: down(silu(gate(h)) · up(h)).
type gatedMLP struct {
	Gate projection `hf:"mlp.gate_proj"`
	Up   projection `hf:"mlp.up_proj"`
	Down projection `hf:"mlp.down_proj"`
}

func newGatedMLP(c *Config) *gatedMLP {
	D, I := c.HiddenSize, c.IntermediateSize
	return &gatedMLP{Gate: newLinear(I, D), Up: newLinear(I, D), Down: newLinear(D, I)}
}

// Forward applies the MLP; st and aux are unused (no router).
func (f *gatedMLP) Forward(h *ts.Tensor, _ *fwdState, _ *moeStats) *ts.Tensor {
	return swiGLU(f.Gate, f.Up, f.Down, h)
}
