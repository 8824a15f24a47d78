package train_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/pltune/pltune/train"
)

// Load a checkpoint, continue a prompt greedily and score a sequence.
func ExampleLoadModel() {
	m, err := train.LoadModel("testdata/ref/llama", train.ModelOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Drop()
	fmt.Println(m.Config.Architecture, m.Config.NumHiddenLayers, "layers")

	out, err := m.Generate(context.Background(), [][]int{{1, 17, 42}}, train.GenerateOptions{MaxNewTokens: 4, StopIDs: []int{}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(out[0]), "new tokens")

	lp, err := m.Score(context.Background(), [][]int{{1, 17, 42}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(lp[0] < 0)
	// Output:
	// LlamaForCausalLM 2 layers
	// 4 new tokens
	// true
}

// Fine-tune with LoRA: only the adapters are trainable; they are saved in
// PEFT's layout or merged into the weights.
func ExampleApplyLoRA() {
	m, err := train.LoadModel("testdata/ref/mistral", train.ModelOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Drop()
	if err := train.ApplyLoRA(m, train.LoRAConfig{Rank: 8, Alpha: 16, TargetModules: []string{"q_proj", "v_proj"}}); err != nil {
		log.Fatal(err)
	}
	trainable := 0
	for _, p := range m.NamedParameters() {
		if p.Trainable {
			trainable++
		}
	}
	fmt.Println(trainable, "trainable tensors")

	dir, err := os.MkdirTemp("", "adapter")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := m.SaveAdapter(dir, "mistral-ref"); err != nil {
		log.Fatal(err)
	}
	if err := m.MergeLoRA(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.LoRA() == nil)
	// Output:
	// 8 trainable tensors
	// true
}
