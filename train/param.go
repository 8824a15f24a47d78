package train

import "github.com/sugarme/gotch/ts"

// Param is one named tensor of a model. Name is the Hugging Face name
// ("model.layers.0.self_attn.q_proj.weight"); Trainable says the optimizer
// updates it (false for frozen base weights under LoRA); NoDecay marks
// norms and biases, which AdamW never decays.
type Param struct {
	Name      string
	T         *ts.Tensor
	Trainable bool
	NoDecay   bool
}
