package openai_test

import (
	"context"
	"fmt"
	"time"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/eval/openai"
)

// A vLLM server started with `vllm serve speakleash/Bielik-11B-v2.3-Instruct`
// listens on port 8000; the key, if any, comes from OPENAI_API_KEY.
func ExampleNew() {
	c, err := openai.New(openai.Config{
		BaseURL: "http://localhost:8000/v1",
		Model:   "speakleash/Bielik-11B-v2.3-Instruct",
		Timeout: time.Minute,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gens, err := c.Generate(ctx, []eval.GenerateRequest{{
		Messages:  []corpus.Message{{Role: corpus.RoleUser, Content: "Jaka jest stolica Polski?"}},
		MaxTokens: 32,
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(gens[0].Text)
}
