package align

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"

	"github.com/pltune/pltune/tokenize"
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
