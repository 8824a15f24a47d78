package local_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/eval/local"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

// The whole pipeline on a model folder: chat samples become SFT rows
// (answers trained, prompts masked), LoRA trains on the model, the model
// is evaluated in process, and the adapter is exported in PEFT's layout.
func Example_pipeline() {
	ctx, out := context.Background(), must(os.MkdirTemp("", "pipeline"))
	defer os.RemoveAll(out)
	p := must(train.Open("testdata/tiny-llama", train.OpenOptions{ModelOptions: train.ModelOptions{Device: "cpu", Seed: 1}}))
	defer p.Drop()

	b := must(tokenize.NewSFTBuilder(p.Tokenizer, tokenize.SFTOptions{MaxLen: 512}))
	seqs, _, err := b.BuildAll(ctx, corpus.ReadSamples(ctx, "../../corpus/samples/data/organic.json", corpus.Options{}))
	check(err)
	rows := must(tokenize.Pack(seqs[:32], 512))

	check(train.ApplyLoRA(p.Model, train.LoRAConfig{Rank: 8, Alpha: 16, TargetModules: []string{"q_proj", "v_proj", "up_proj"}}))
	p.Model.SetTraining(true)
	cfg := train.DefaultTrainerConfig()
	cfg.OutDir, cfg.MaxSteps, cfg.LR, cfg.WarmupRatio = out, 10, 1e-2, 0
	cfg.Export = func(dir string) error { return p.Export(dir, train.ExportAdapter) }
	var losses []float64
	cfg.OnStep = func(r train.StepRecord) { losses = append(losses, r.Loss) }
	sum := must(must(train.NewTrainer(cfg, p.Model.NamedParameters(), train.NewLMObjective(p.Model, rows, p.PadID()), nil)).Run(ctx))
	fmt.Println(sum.Steps, "steps, loss fell:", losses[len(losses)-1] < losses[0])

	p.Model.SetTraining(false)
	task := must(eval.ReadTaskFile("../samples/mc.jsonl", ""))
	res := must(eval.Run(ctx, must(local.New(p.Model, p.Tokenizer, "tiny-lora")), []*eval.Task{task}, eval.Options{}))
	fmt.Println(res.Tasks[0].Name, len(res.Tasks[0].Items), "questions, acc in [0, 1]:", res.Tasks[0].MC.Acc.Rate >= 0 && res.Tasks[0].MC.Acc.Rate <= 1)

	files, _ := filepath.Glob(filepath.Join(sum.Final, "adapter_*"))
	for _, f := range files {
		fmt.Println(filepath.Base(f))
	}
	// Output:
	// 10 steps, loss fell: true
	// mc 36 questions, acc in [0, 1]: true
	// adapter_config.json
	// adapter_model.safetensors
}

func must[T any](v T, err error) T {
	check(err)
	return v
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
