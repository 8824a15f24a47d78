package eval_test

import (
	"testing"

	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/eval/samples"
)

// The embedded sample sets must read as the kinds their names say, and every
// accepted answer must score as correct on its own question.
func TestSampleSets(t *testing.T) {
	want := map[string]eval.Kind{
		"plcc": eval.KindOpenQA, "mc": eval.KindMultipleChoice,
		"refusal": eval.KindRefusal, "verbosity": eval.KindVerbosity,
	}
	for name, kind := range want {
		f, err := samples.FS().Open(name + ".jsonl")
		if err != nil {
			t.Fatal(err)
		}
		task, err := eval.ReadTask(f, name+".jsonl", name, "")
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if task.Kind != kind {
			t.Errorf("%s: detected %s; want %s", name, task.Kind, kind)
		}
		for i := range task.OpenQA {
			it := &task.OpenQA[i]
			for _, a := range it.Answers {
				if ok, _ := eval.MatchOpenQA(it, "Odpowiedź: "+a+".", eval.OpenQAOptions{Match: eval.MatchExact}); !ok {
					t.Errorf("%s: accepted answer %q does not match itself", it.ID, a)
				}
			}
		}
		for _, it := range task.Refusal {
			// A prompt is not a refusal; a detector that fires on the
			// questions themselves would be too eager.
			if m := eval.DetectRefusal(it.Prompt); m.Refused {
				t.Errorf("%s: the prompt itself reads as a refusal (%s)", it.ID, m.Pattern)
			}
		}
	}
}
