package samples

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pltune/pltune/eval"
)

// ErrUnknownSet is wrapped by the error Task returns for a name that is not
// one of Names.
var ErrUnknownSet = errors.New("no such sample set")

// Names returns the names of the sample sets, in the order Tasks reads them
// when given none: plcc, mc, refusal, verbosity.
func Names() []string { return []string{"plcc", "mc", "refusal", "verbosity"} }

// Task reads the sample set name (one of Names) as an evaluation task named
// name; its kind is detected from the fields, as for any task file, and
// errors name the file as samples/NAME.jsonl.
func Task(name string) (*eval.Task, error) {
	if !slices.Contains(Names(), name) {
		return nil, fmt.Errorf("samples: %q: %w; want one of %s", name, ErrUnknownSet, strings.Join(Names(), ", "))
	}
	f, err := files.Open(name + ".jsonl")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return eval.ReadTask(f, "samples/"+name+".jsonl", name, "")
}

// Tasks reads the named sample sets in the order given, or all of them in
// the order of Names when names is empty.
func Tasks(names ...string) ([]*eval.Task, error) {
	if len(names) == 0 {
		names = Names()
	}
	out := make([]*eval.Task, 0, len(names))
	for _, n := range names {
		t, err := Task(n)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}
