//go:build pltune_torch

package main

import (
	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/eval/local"
)

// The in-process backend links libtorch; wiring it here keeps package
// eval itself free of it.
func init() {
	openLocalModel = func(dir, tokenizer string, noBOS bool) (eval.Model, error) {
		m, err := local.Open(dir, tokenizer)
		if err != nil {
			return nil, err
		}
		m.NoSpecialTokens = noBOS
		return m, nil
	}
}
