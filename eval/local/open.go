package local

import (
	"path/filepath"
	"strings"

	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/train"
)

// Open loads a Hugging Face model folder or a PEFT adapter folder on its
// base (train.Open) with its tokenizer. The model is named after its
// folder and fingerprinted by its files (eval.FingerprintDirs: base,
// adapter and tokenizer), so the results cache never answers it with
// another model's records.
func Open(dir string, opts train.OpenOptions) (*Model, error) {
	p, err := train.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	fp, err := eval.FingerprintDirs(p.BaseDir, p.AdapterDir, p.TokenizerDir)
	if err != nil {
		p.Drop()
		return nil, err
	}
	l, err := New(p.Model, p.Tokenizer, modelName(dir))
	if err != nil {
		p.Drop()
		return nil, err
	}
	l.fingerprint = fp
	return l, nil
}

// modelName names a model after its folder, with the run's folder before
// the names every run uses (out/orpo/final is orpo/final).
func modelName(dir string) string {
	dir = filepath.Clean(dir)
	name := filepath.Base(dir)
	if name == "final" || strings.HasPrefix(name, "checkpoint-") {
		if parent := filepath.Base(filepath.Dir(dir)); parent != "." && parent != string(filepath.Separator) {
			return parent + "/" + name
		}
	}
	return name
}

// Fingerprint identifies the weights Open loaded ("" for a model given to
// New): the results cache keys answers by it.
func (l *Model) Fingerprint() string { return l.fingerprint }

var _ eval.Fingerprinter = (*Model)(nil)
