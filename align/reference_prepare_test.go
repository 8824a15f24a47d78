package align

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pltune/pltune/train"
)

// Prepare computes the reference log-probs once, keeps them in the cache
// file, and reads them back for the same pairs and source without loading
// the reference model at all.
func TestReferencePrepare(t *testing.T) {
	ctx := context.Background()
	const vocab = 24
	policy := tinyLlama(t, vocab, 1)
	pairs := syntheticPairs(6, vocab)
	dir := t.TempDir()
	refDir := filepath.Join(dir, "ref")
	if err := tinyLlama(t, vocab, 2).Save(refDir, train.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	newDPO := func() *DPO {
		o, err := NewDPO(policy, pairs, 0, DPOConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}

	// The policy as reference: the values equal ComputeReference's.
	var log bytes.Buffer
	self := &Reference{BatchSize: 4, Log: &log}
	cache := filepath.Join(dir, "out", "reference_logps.json")
	o := newDPO()
	if cached, err := self.Prepare(ctx, o, cache); err != nil || cached {
		t.Fatalf("first Prepare: cached %v, %v; want computed", cached, err)
	}
	want := newDPO()
	if err := want.ComputeReference(ctx, nil, 4); err != nil {
		t.Fatal(err)
	}
	checkRefs(t, "policy", o.Reference, want.Reference)
	again := newDPO()
	if cached, err := self.Prepare(ctx, again, cache); err != nil || !cached {
		t.Fatalf("second Prepare: cached %v, %v; want the cache file read", cached, err)
	}
	checkRefs(t, "cached", again.Reference, want.Reference)
	if !strings.Contains(log.String(), "computing reference log-probs of 6 pairs (policy)") || !strings.Contains(log.String(), "from "+cache) {
		t.Errorf("log %q: want the computing and the reading line", log.String())
	}

	// A reference folder: another source, so the policy's cache is not
	// reused; the values are the folder model's.
	ref := &Reference{Dir: refDir, BatchSize: 4}
	defer ref.Close()
	o = newDPO()
	if cached, err := ref.Prepare(ctx, o, cache); err != nil || cached {
		t.Fatalf("Prepare with Dir: cached %v, %v; want computed (the cache holds the policy's values)", cached, err)
	}
	loaded, err := train.LoadModel(refDir, train.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Drop()
	want = newDPO()
	if err := want.ComputeReference(ctx, loaded, 4); err != nil {
		t.Fatal(err)
	}
	checkRefs(t, "ref-model", o.Reference, want.Reference)
	if math.Abs(o.Reference[0].Chosen-again.Reference[0].Chosen) < 1e-6 {
		t.Errorf("the reference folder scored pair 0 as the policy does (%g): not the folder's model", o.Reference[0].Chosen)
	}

	// Cached values are read without the model: a folder gone since
	// does not matter.
	gone := &Reference{Dir: filepath.Join(dir, "missing"), Source: ref.source()}
	if cached, err := gone.Prepare(ctx, newDPO(), cache); err != nil || !cached {
		t.Errorf("Prepare with a cache of the same source: cached %v, %v; want read without loading the model", cached, err)
	}
	if gone.model != nil {
		t.Error("a reference model was loaded although the cache held the values")
	}
}

func TestReferencePrepareVocabMismatch(t *testing.T) {
	dir := t.TempDir()
	if err := tinyLlama(t, 30, 2).Save(dir, train.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	o, err := NewDPO(tinyLlama(t, 24, 1), syntheticPairs(2, 24), 0, DPOConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ref := &Reference{Dir: dir}
	defer ref.Close()
	_, err = ref.Prepare(context.Background(), o, "")
	if err == nil || !strings.Contains(err.Error(), "vocabulary of 30, the policy 24") {
		t.Errorf("error %v; want the vocabulary mismatch named", err)
	}
}

func checkRefs(t *testing.T, what string, got, want []RefLogProbs) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d reference values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i].Chosen-want[i].Chosen) > 1e-5 || math.Abs(got[i].Rejected-want[i].Rejected) > 1e-5 {
			t.Errorf("%s: pair %d: %v, want %v", what, i, got[i], want[i])
		}
	}
}
