package eval_test

import (
	"fmt"

	"github.com/pltune/pltune/eval"
)

// A leaderboard task renders a dataset's row as the harness's prompt and
// gold choice.
func ExampleBuildHarness() {
	spec, _ := eval.HarnessTaskByName("polish_dyk_multiple_choice")
	docs := []eval.Doc{{
		"q_id":     "czywiesz1",
		"question": "kto napisał „Pana Tadeusza”?",
		"answer":   "Adam Mickiewicz napisał „Pana Tadeusza” w Paryżu.",
		"target":   "1",
	}}
	task, err := eval.BuildHarness(spec, docs, "", "dyk.tsv", eval.HarnessOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	d := task.Harness.Docs[0]
	fmt.Println(d.Context)
	fmt.Println("gold:", spec.Choices[d.Gold])
	// Output:
	// Pytanie: "kto napisał „Pana Tadeusza”?"
	// Sugerowana odpowiedź: "Adam Mickiewicz napisał „Pana Tadeusza” w Paryżu."
	// Pytanie: Czy sugerowana odpowiedź na zadane pytanie jest poprawna?
	// Odpowiedz krótko "Tak" lub "Nie". Prawidłowa odpowiedź:
	// gold: Tak
}

// Two runs differ significantly only when the paired test says so.
func ExampleMcNemar() {
	// B fixed 9 items A got wrong and broke 1 that A got right.
	p, method := eval.McNemar(1, 9)
	fmt.Printf("%s p = %.4f\n", method, p)
	// Output:
	// mcnemar-exact p = 0.0215
}
