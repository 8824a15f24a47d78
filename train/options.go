package train

import (
	"fmt"

	"github.com/sugarme/gotch"
)

// ModelOptions says where and in which precision a model lives.
type ModelOptions struct {
	Device gotch.Device // default gotch.CPU
	DType  gotch.DType  // parameter precision: gotch.Float (the default, also for the zero value), gotch.BFloat16 or gotch.Half
	Seed   int64        // random initialisation (NewModel) and LoRA init
	// GradientCheckpointing keeps only each decoder layer's input in
	// training and recomputes the layer in backward (ForwardLogProbs).
	GradientCheckpointing bool
}

func (o *ModelOptions) ensureDefaults() error {
	if o.Device.Name == "" {
		o.Device = gotch.CPU
	}
	// The zero DType is gotch.Uint8, never a parameter type: it means
	// the default.
	if o.DType == gotch.Uint8 || o.DType == gotch.Invalid {
		o.DType = gotch.Float
	}
	switch o.DType {
	case gotch.Float, gotch.BFloat16, gotch.Half:
		return nil
	}
	return fmt.Errorf("train: ModelOptions.DType %v: want gotch.Float, gotch.BFloat16 or gotch.Half", o.DType)
}
