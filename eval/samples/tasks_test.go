package samples_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/eval/samples"
)

func TestTasks(t *testing.T) {
	want := []struct {
		name  string
		kind  eval.Kind
		items func(*eval.Task) int
	}{
		{"plcc", eval.KindOpenQA, func(t *eval.Task) int { return len(t.OpenQA) }},
		{"mc", eval.KindMultipleChoice, func(t *eval.Task) int { return len(t.MC) }},
		{"refusal", eval.KindRefusal, func(t *eval.Task) int { return len(t.Refusal) }},
		{"verbosity", eval.KindVerbosity, func(t *eval.Task) int { return len(t.Verbosity) }},
	}
	all, err := samples.Tasks()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(want) {
		t.Fatalf("Tasks() read %d sets, want %d", len(all), len(want))
	}
	for i, w := range want {
		got := all[i]
		if got.Name != w.name || got.Kind != w.kind || w.items(got) == 0 {
			t.Errorf("set %d: %s, kind %s, %d items; want %s of kind %s with items", i, got.Name, got.Kind, w.items(got), w.name, w.kind)
		}
	}
	some, err := samples.Tasks("verbosity", "mc")
	if err != nil {
		t.Fatal(err)
	}
	if len(some) != 2 || some[0].Name != "verbosity" || some[1].Name != "mc" {
		t.Errorf("Tasks(verbosity, mc) read %v", some)
	}
}

func TestTaskUnknown(t *testing.T) {
	for _, name := range []string{"plc", "", "../samples", "mc.jsonl"} {
		_, err := samples.Task(name)
		if !errors.Is(err, samples.ErrUnknownSet) {
			t.Errorf("Task(%q): error %v, want ErrUnknownSet", name, err)
		}
	}
	if _, err := samples.Tasks("mc", "nope"); !errors.Is(err, samples.ErrUnknownSet) {
		t.Errorf("Tasks(mc, nope): error %v, want ErrUnknownSet", err)
	}
}

func ExampleTasks() {
	tasks, err := samples.Tasks()
	if err != nil {
		panic(err)
	}
	for _, t := range tasks {
		fmt.Println(t.Name, t.Kind)
	}
	// Output:
	// plcc openqa
	// mc mc
	// refusal refusal
	// verbosity verbosity
}
