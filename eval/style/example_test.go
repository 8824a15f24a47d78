package style_test

import (
	"fmt"

	"github.com/pltune/pltune/eval/style"
)

func ExampleLint() {
	text := "Szanowna Pani,\nDziękuję za list. Paczka waży 3.5 kg.\n\nZ poważaniem,\nJan"
	for _, f := range style.Lint(text) {
		fmt.Printf("%s: %q → %q\n", f.Rule, text[f.Start:f.End], f.Suggestion)
	}
	// Output:
	// greeting-capital: "Dziękuję" → "dziękuję"
	// decimal-point: "3.5" → "3,5"
	// closing-comma: "Z poważaniem," → "Z poważaniem"
}

func ExamplePer1000Words() {
	text := "Myślę że to dobry pomysł."
	fmt.Printf("%.0f\n", style.Per1000Words(style.Lint(text), text))
	// Output: 200
}
