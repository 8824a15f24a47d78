package report_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/eval/report"
)

func ExampleWriteRun() {
	res := &eval.Result{Model: "bielik-sft", Tasks: []eval.TaskResult{{
		Name: "plcc", Kind: eval.KindOpenQA,
		OpenQA: &eval.OpenQAScore{
			Accuracy: eval.Accuracy{Correct: 3, Total: 4, Rate: 0.75},
			Categories: []eval.CategoryAccuracy{
				{Category: "geography", Accuracy: eval.Accuracy{Correct: 2, Total: 2, Rate: 1}},
				{Category: "history", Accuracy: eval.Accuracy{Correct: 1, Total: 2, Rate: 0.5}},
			},
		},
	}}}
	dir, _ := os.MkdirTemp("", "run")
	defer os.RemoveAll(dir)
	paths, err := report.WriteRun(dir, res)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		fmt.Println(filepath.ToSlash(rel))
	}
	// Output:
	// results.json
	// charts/plcc-categories.png
	// report.md
}
