package dist_test

import (
	"context"
	"log"

	"github.com/pltune/pltune/train"
	"github.com/pltune/pltune/train/dist"
)

// A training program joins the group when it was launched as part of one
// (`pltune launch --nproc-per-node 2 -- ./train-program`, or torchrun
// --no-python) and trains alone otherwise. BatchSize is per rank.
func ExampleInit() {
	ctx := context.Background()
	cfg := train.DefaultTrainerConfig()
	cfg.OutDir = "out"
	if dist.Launched() {
		g, err := dist.Init(ctx, dist.Options{}) // Gloo on CPU, NCCL on CUDA
		if err != nil {
			log.Fatal(err)
		}
		defer g.Close()
		cfg.Comm = g
	}
	// ... train.NewTrainer(cfg, model.NamedParameters(), objective, nil).Run(ctx)
}
