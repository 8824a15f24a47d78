package safetensors_test

import (
	"fmt"
	"log"
	"os"

	"github.com/pltune/pltune/train/safetensors"
)

// A checkpoint is written tensor by tensor and read back one tensor at a
// time, converting bfloat16 to float32 on the way.
func ExampleOpenDir() {
	dir, err := os.MkdirTemp("", "ckpt")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	norm := safetensors.Tensor{Name: "model.norm.weight", DType: safetensors.BF16, Shape: []int64{4}}
	src := []safetensors.Source{{Tensor: norm, Data: func() ([]byte, error) {
		return safetensors.EncodeFloat32(nil, safetensors.BF16, []float32{1, 0.5, 0.25, 2})
	}}}
	files, err := safetensors.WriteSharded(dir, src, 0, map[string]string{"format": "pt"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(files)

	set, err := safetensors.OpenDir(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer set.Close()
	info, _ := set.Info("model.norm.weight")
	vals, err := set.ReadFloat32("model.norm.weight")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.DType, info.Shape, vals)
	// Output:
	// [model.safetensors]
	// BF16 [4] [1 0.5 0.25 2]
}
