//go:build pltune_torch

package main

// This flavour links libtorch and runs every command itself.
func init() {
	forwardEval = nil
}
