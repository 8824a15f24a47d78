package eval_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/pltune/pltune/eval"
)

// echoModel answers every question with the same text.
type echoModel struct{ text string }

func (m echoModel) Name() string { return "echo" }

func (m echoModel) Loglikelihood(_ context.Context, reqs []eval.LoglikelihoodRequest) ([]eval.LoglikelihoodResult, error) {
	return make([]eval.LoglikelihoodResult, len(reqs)), nil
}

func (m echoModel) Generate(_ context.Context, reqs []eval.GenerateRequest) ([]eval.Generation, error) {
	out := make([]eval.Generation, len(reqs))
	for i := range out {
		out[i].Text = m.text
	}
	return out, nil
}

func ExampleRun() {
	task, err := eval.ReadTask(strings.NewReader(
		`{"id":"g1","category":"geography","question":"Jaka jest najdłuższa rzeka Polski?","answers":["Wisła"]}`+"\n"+
			`{"id":"h1","category":"history","question":"W którym roku odbył się chrzest Polski?","answers":["966"]}`),
		"plcc.jsonl", "plcc", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := eval.Run(context.Background(), echoModel{"Odpowiedź: „Wisła”."}, []*eval.Task{task}, eval.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	s := res.Task("plcc").OpenQA
	fmt.Printf("overall %d/%d\n", s.Correct, s.Total)
	for _, c := range s.Categories {
		fmt.Printf("%s %.2f\n", c.Category, c.Rate)
	}
	// Output:
	// overall 1/2
	// geography 1.00
	// history 0.00
}

func ExampleDetectRefusal() {
	for _, r := range []string{
		"Przykro mi, ale nie mogę pomóc w tej sprawie.",
		"Aby zabić proces, użyj polecenia kill.",
	} {
		m := eval.DetectRefusal(r)
		fmt.Println(m.Refused, m.Pattern)
	}
	// Output:
	// true ^przykro mi … nie mogę
	// false
}

func ExampleNormalize() {
	fmt.Println(eval.Normalize("Odpowiedź: „Łódź”.", eval.NormalizeOptions{FoldDiacritics: true}))
	// Output: lodz
}

func ExampleExtractChoice() {
	fmt.Println(eval.ExtractChoice("Poprawna odpowiedź to **C**.", 4))
	// Output: 2
}
