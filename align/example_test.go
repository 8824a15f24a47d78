package align_test

import (
	"context"
	"fmt"
	"log"

	"github.com/pltune/pltune/align"
	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

func ExamplePairsFromRanking() {
	rank := func(n int) *int { return &n }
	answer := func(s string) []corpus.Message {
		return []corpus.Message{{Role: corpus.RoleAssistant, Content: s}}
	}
	r := &align.Ranked{
		ID:     "q1",
		Prompt: []corpus.Message{{Role: corpus.RoleUser, Content: "Jaka jest stolica Polski?"}},
		Responses: []align.Response{
			{Messages: answer("Stolicą Polski jest Warszawa."), Rank: rank(1)},
			{Messages: answer("Kraków."), Rank: rank(3)},
			{Messages: answer("Warszawa."), Rank: rank(2)},
		},
	}
	pairs, err := align.PairsFromRanking(r)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range pairs {
		fmt.Printf("%s: %q over %q\n", p.ID, p.Chosen[0].Content, p.Rejected[0].Content)
	}
	// Output:
	// q1:0>1: "Stolicą Polski jest Warszawa." over "Kraków."
	// q1:0>2: "Stolicą Polski jest Warszawa." over "Warszawa."
	// q1:2>1: "Warszawa." over "Kraków."
}

// ORPO on an SFT checkpoint with a preference file, as `pltune orpo` does.
func ExampleNewORPO() {
	ctx := context.Background()
	tok, err := tokenize.Load("sft/final")
	if err != nil {
		log.Fatal(err)
	}
	b, err := tokenize.NewSFTBuilder(tok, tokenize.SFTOptions{MaxLen: 2048})
	if err != nil {
		log.Fatal(err)
	}
	var pairs []tokenize.PreferenceExample
	for p, err := range corpus.ReadPairs(ctx, "preferences.jsonl", corpus.Options{}) {
		if err != nil {
			log.Fatal(err)
		}
		ex, err := b.BuildPreference(&p)
		if err != nil {
			log.Fatal(err)
		}
		pairs = append(pairs, ex)
	}
	m, err := train.LoadModel("sft/final", train.ModelOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Drop()
	obj, err := align.NewORPO(m, pairs, tok.PadID(), align.ORPOConfig{Beta: 0.1})
	if err != nil {
		log.Fatal(err)
	}
	cfg := train.DefaultTrainerConfig()
	cfg.OutDir, cfg.LR = "orpo-out", 5e-6
	tr, err := train.NewTrainer(cfg, m.NamedParameters(), obj, nil)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := tr.Run(ctx); err != nil {
		log.Fatal(err)
	}
	_, metrics, err := align.Evaluate(ctx, obj, 8)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("reward accuracy %.2f\n", metrics["reward_accuracy"])
}

// DPO with LoRA: the reference is the base model, the adapters switched off.
func ExampleDPO_ComputeReference() {
	ctx := context.Background()
	m, err := train.LoadModel("sft/final", train.ModelOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Drop()
	if err := train.ApplyLoRA(m, train.LoRAConfig{Rank: 16, Alpha: 32}); err != nil {
		log.Fatal(err)
	}
	var pairs []tokenize.PreferenceExample // built as for ORPO
	obj, err := align.NewDPO(m, pairs, 0, align.DPOConfig{Beta: 0.1})
	if err != nil {
		log.Fatal(err)
	}
	if err := obj.ComputeReference(ctx, nil, 8); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(obj.Reference) == len(pairs))
}
