//go:build pltune_torch

package main

import (
	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/eval/local"
	"github.com/pltune/pltune/train"
)

// The in-process backend links libtorch; wiring it here keeps package
// eval itself free of it.
func init() {
	openLocalModel = func(f modelFlags, noBOS bool) (eval.Model, error) {
		opts, err := deviceOptions(f.device, f.dtype, train.ModelOptions{})
		if err != nil {
			return nil, err
		}
		m, err := local.Open(f.model, train.OpenOptions{ModelOptions: opts, Base: f.base, Tokenizer: f.tokenizer})
		if err != nil {
			return nil, err
		}
		m.NoSpecialTokens = noBOS
		return m, nil
	}
}
