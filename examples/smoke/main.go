// Command smoke runs the smallest real libtorch training job — a two-layer
// network fitted with SGD — and prints its loss per step. It shows the build
// chain works.
package main

import (
	"fmt"
	"os"

	"github.com/pltune/pltune/internal/torchsmoke"
)

func main() {
	_, err := torchsmoke.Run(30, func(step int, loss float64) {
		fmt.Printf("step %2d  loss %.5f\n", step, loss)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "smoke:", err)
		os.Exit(1)
	}
}
