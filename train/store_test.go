package train

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/tokstore"
)

// recordingRows logs the rows the loop reads.
type recordingRows struct {
	tokstore.Rows
	read []int
}

func (r *recordingRows) Row(i int) (tokenize.PackedRow, error) {
	r.read = append(r.read, i)
	return r.Rows.Row(i)
}

// smallStore writes a text store of n pseudo-random documents over a
// vocabulary of v ids.
func smallStore(t *testing.T, dir string, n, v int, salt int) {
	t.Helper()
	w, err := tokstore.NewWriter(dir, tokstore.TypeText, tokstore.TokenizerInfo{VocabSize: v, EOSID: 2}, 100)
	if err != nil {
		t.Fatal(err)
	}
	x := uint32(12345 + salt)
	for d := range n {
		ids := []int{1}
		for range 5 + d%13 {
			x = x*1664525 + 1013904223
			ids = append(ids, 3+int(x>>8)%(v-3))
		}
		if err := w.Add(append(ids, 2), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func storeRows(t *testing.T, dir string) *recordingRows {
	s, err := tokstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rows, err := tokstore.TextRows(s, 16)
	if err != nil {
		t.Fatal(err)
	}
	return &recordingRows{Rows: rows}
}

// A model trained from a token store, cancelled mid-epoch and resumed,
// reads the rows the uninterrupted run reads in the same order and ends
// with the same weights; a resume on another store is refused.
func TestStoreTrainingResumesMidEpoch(t *testing.T) {
	tmp := t.TempDir()
	store := filepath.Join(tmp, "store")
	smallStore(t, store, 40, 96, 0)
	cfg := func(out string) TrainerConfig {
		c := testConfig(out)
		c.LR, c.BatchSize, c.GradAccum, c.Epochs = 1e-3, 2, 2, 2
		return c
	}
	run := func(out string, src *recordingRows, ctx context.Context, resume bool, onStep func(StepRecord)) (*Model, error) {
		m := loadRef(t, "llama")
		c := cfg(out)
		c.Resume, c.OnStep = resume, onStep
		tr, err := NewTrainer(c, m.NamedParameters(), NewLMObjectiveFrom(m, src, 0), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.Run(ctx)
		return m, err
	}
	whole := storeRows(t, store)
	wm, err := run(filepath.Join(tmp, "whole"), whole, context.Background(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	perEpoch := whole.Len() / 4
	stopAt := perEpoch + perEpoch/2 // in the middle of the second epoch

	out := filepath.Join(tmp, "resumed")
	first := storeRows(t, store)
	ctx, cancel := context.WithCancel(context.Background())
	m1, err := run(out, first, ctx, false, func(r StepRecord) {
		if r.Step == stopAt {
			cancel()
		}
	})
	m1.Drop()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	second := storeRows(t, store)
	sm, err := run(out, second, context.Background(), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The cancelled run read the next window's rows before it stopped.
	if !slices.Equal(append(first.read[:stopAt*4:stopAt*4], second.read...), whole.read) {
		t.Fatalf("rows read: %v then %v; the uninterrupted run read %v", first.read, second.read, whole.read)
	}
	if len(whole.read) != 2*perEpoch*4 {
		t.Fatalf("%d rows read, want %d", len(whole.read), 2*perEpoch*4)
	}
	a, b := wm.NamedParameters(), sm.NamedParameters()
	for i := range a {
		if !slices.Equal(a[i].T.Float64Values(), b[i].T.Float64Values()) {
			t.Fatalf("%s differs after resuming", a[i].Name)
		}
	}
	wm.Drop()
	sm.Drop()

	other := filepath.Join(tmp, "other")
	smallStore(t, other, 40, 96, 1)
	om, err := run(out, storeRows(t, other), context.Background(), true, nil)
	om.Drop()
	if err == nil || !strings.Contains(err.Error(), "other data") {
		t.Fatalf("resume on another store: %v; want a refusal", err)
	}
}
