//go:build pltune_torch

package main

import (
	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/eval/local"
)

// The in-process backend links libtorch; wiring it here keeps package
// eval itself free of it.
func init() {
	openLocalModel = func(dir, tokenizer string) (eval.Model, error) {
		return local.Open(dir, tokenizer)
	}
}
