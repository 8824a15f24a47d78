package train_test

import (
	"testing"

	"github.com/pltune/pltune/internal/torchsmoke"
)

// TestLibtorchSmoke proves the build chain: a small network's forward,
// backward and optimizer steps run on libtorch and lower the loss.
func TestLibtorchSmoke(t *testing.T) {
	losses, err := torchsmoke.Run(20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(losses) != 20 {
		t.Fatalf("got %d losses, want 20", len(losses))
	}
	if !(losses[19] < losses[0]*0.8) {
		t.Fatalf("loss did not go down: first %.4f, last %.4f", losses[0], losses[19])
	}
}
