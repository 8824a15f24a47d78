package align

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
	"github.com/pltune/pltune/train/hfconfig"
)

// referenceFile is what SaveReference writes: the per-pair values with
// what they were computed for, so a stale file is never reused.
type referenceFile struct {
	Source      string        `json:"source"`      // the reference model, as the caller names it
	Pairs       int           `json:"pairs"`       // number of pairs
	Fingerprint string        `json:"fingerprint"` // of the pairs' token ids and labels
	LogProbs    []RefLogProbs `json:"logps"`
}

// Fingerprint identifies pairs by their token ids and labels (FNV-1a 64).
func Fingerprint(pairs []tokenize.PreferenceExample) string {
	h := fnv.New64a()
	var buf [8]byte
	put := func(v int) {
		binary.LittleEndian.PutUint64(buf[:], uint64(int64(v)))
		h.Write(buf[:])
	}
	for _, p := range pairs {
		for _, s := range []tokenize.Sequence{p.Chosen, p.Rejected} {
			put(len(s.IDs))
			for i := range s.IDs {
				put(s.IDs[i])
				put(s.Labels[i])
			}
		}
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// SaveReference writes the reference log-probs to path (JSON), tagged with
// source (e.g. the reference model's folder) and the pairs' fingerprint.
func (o *DPO) SaveReference(path, source string) error {
	if len(o.Reference) != len(o.Pairs) {
		return errors.New("align: SaveReference: no reference log-probs to save")
	}
	b, err := json.Marshal(referenceFile{Source: source, Pairs: len(o.Pairs), Fingerprint: Fingerprint(o.Pairs), LogProbs: o.Reference})
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadReference sets the reference log-probs from a file SaveReference
// wrote for the same pairs and source. It reports false, with no error,
// when the file does not exist or was written for other pairs or another
// source: the caller then computes them afresh.
func (o *DPO) LoadReference(path, source string) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var f referenceFile
	if err := json.Unmarshal(b, &f); err != nil {
		return false, fmt.Errorf("align: %s: %w", path, err)
	}
	if f.Source != source || f.Pairs != len(o.Pairs) || len(f.LogProbs) != len(o.Pairs) || f.Fingerprint != Fingerprint(o.Pairs) {
		return false, nil
	}
	o.Reference = f.LogProbs
	return true, nil
}

// Reference is where DPO's reference log-probs come from: a reference
// model's folder, or the policy itself (with its LoRA adapters switched
// off, or, fully fine-tuned, as it is before its first update), and a
// cache file per set of pairs so that a resumed run does not score them
// again. The reference model is loaded on the first cache miss only, once
// for every objective Prepare is called for; Close drops it.
type Reference struct {
	// Dir is the reference model's Hugging Face folder or PEFT adapter
	// folder (loaded on its base, train.Open); "" scores with the policy.
	Dir string
	// Model, when set, is the reference itself, already loaded: the policy
	// as it starts when it trains on an adapter it was opened with, whose
	// adapters must stay on. It is scored in evaluation mode (no LoRA
	// dropout), then put back in training mode; Close does not drop it.
	Model *train.Model
	// Source names the reference in the cache files: values computed for
	// another source are never reused. "" names it by Dir ("ref-model
	// DIR"), or "policy".
	Source string
	// BatchSize is the number of pairs scored per forward pass; 0 means 8.
	BatchSize int
	// Log, when set, receives a line per Prepare: where the values were
	// read from, or that they are being computed.
	Log io.Writer

	model *train.Model
}

func (r *Reference) source() string {
	switch {
	case r.Source != "":
		return r.Source
	case r.Dir != "":
		return "ref-model " + r.Dir
	}
	return "policy"
}

// Prepare sets o.Reference: read from cacheFile when it holds the values
// of the same pairs and source, else computed and written to cacheFile
// ("" keeps no cache). It reports whether they came from the cache. The
// reference model of Dir is loaded on o's model's device in its dtype and
// must have the policy's vocabulary.
func (r *Reference) Prepare(ctx context.Context, o *DPO, cacheFile string) (cached bool, err error) {
	src := r.source()
	if cacheFile != "" {
		ok, err := o.LoadReference(cacheFile, src)
		if err != nil || ok {
			if ok && r.Log != nil {
				fmt.Fprintf(r.Log, "reference log-probs of %d pairs from %s\n", len(o.Pairs), cacheFile)
			}
			return ok, err
		}
	}
	model := r.model
	switch {
	case r.Model != nil:
		model = r.Model
		model.SetTraining(false)
		defer model.SetTraining(true)
	case r.Dir != "" && r.model == nil:
		if r.model, err = loadReferenceModel(r.Dir, o.model); err != nil {
			return false, err
		}
		model = r.model
	}
	if r.Log != nil {
		fmt.Fprintf(r.Log, "computing reference log-probs of %d pairs (%s)\n", len(o.Pairs), src)
	}
	bs := r.BatchSize
	if bs <= 0 {
		bs = 8
	}
	if err := o.ComputeReference(ctx, model, bs); err != nil {
		return false, err
	}
	if cacheFile == "" {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(cacheFile), 0o755); err != nil {
		return false, err
	}
	return false, o.SaveReference(cacheFile, src)
}

// Close drops the reference model Prepare loaded, if any.
func (r *Reference) Close() {
	if r.model != nil {
		r.model.Drop()
		r.model = nil
	}
}

// loadReferenceModel loads dir on policy's device in its dtype (on the CPU
// in float32 without a policy) and checks that the vocabularies agree, so
// that the reference scores the policy's token ids.
func loadReferenceModel(dir string, policy *train.Model) (*train.Model, error) {
	var opts train.ModelOptions
	if policy != nil {
		opts = policy.Options()
		opts.GradientCheckpointing = false
	}
	// A model folder or an adapter folder on its base; the tokenizer is
	// the policy's.
	loc, err := hfconfig.Locate(dir, "")
	if err != nil {
		return nil, fmt.Errorf("align: reference model: %w", err)
	}
	ref, err := train.LoadModel(loc.ModelDir, opts)
	if err != nil {
		return nil, fmt.Errorf("align: reference model: %w", err)
	}
	if loc.AdapterDir != "" {
		if err := train.LoadAdapter(ref, loc.AdapterDir); err != nil {
			ref.Drop()
			return nil, fmt.Errorf("align: reference model: %w", err)
		}
	}
	if policy != nil && ref.Config.VocabSize != policy.Config.VocabSize {
		ref.Drop()
		return nil, fmt.Errorf("align: reference model %s has a vocabulary of %d, the policy %d", dir, ref.Config.VocabSize, policy.Config.VocabSize)
	}
	ref.SetTraining(false)
	return ref, nil
}
