package tokstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// OpenTraining reads one uncapped store whole, mixes several, and refuses
// a store of the other type or of another tokenizer, naming it.
func TestOpenTraining(t *testing.T) {
	tmp := t.TempDir()
	files, _ := textInputs(t, tmp)
	opts := buildOpts(t)
	_, tokPath := testTokenizer(t)
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	mustBuild(t, a, files[:1], opts)
	mustBuild(t, b, files[1:], opts)
	if !IsStore(a) || IsStore(files[0]) || IsStore(tmp) {
		t.Fatal("IsStore: want true for a store only")
	}
	to := TrainOptions{Type: TypeText, Tokenizer: tokPath, RowLen: 32, Seed: 1}

	one, err := OpenTraining([]TrainSource{{Dir: a}}, to)
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := TextRows(mustOpen(t, a), 32)
	if one.Mix != nil || one.Len() != whole.Len() || one.Fingerprint() != whole.Fingerprint() {
		t.Errorf("one store: mix %v, %d rows; want the store's %d rows read whole", one.Mix != nil, one.Len(), whole.Len())
	}
	one.Close()

	two, err := OpenTraining([]TrainSource{{Dir: a, Weight: 3}, {Dir: b, Weight: 1}}, to)
	if err != nil {
		t.Fatal(err)
	}
	if two.Mix == nil || len(two.Mix.Report) != 2 || two.Rows != Rows(two.Mix) {
		t.Errorf("two stores: want their mixture with a report of two lines")
	}
	if err := two.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := OpenTraining([]TrainSource{{Dir: a}}, TrainOptions{Type: TypeChat, Tokenizer: tokPath, RowLen: 32}); err == nil || !strings.Contains(err.Error(), a+" is a text store") {
		t.Errorf("a text store for chat: %v", err)
	}
	other := filepath.Join(tmp, "other-tokenizer")
	os.MkdirAll(other, 0o755)
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		raw, err := os.ReadFile(filepath.Join(tokPath, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "tokenizer_config.json" {
			raw = []byte(`{}`)
		}
		os.WriteFile(filepath.Join(other, f), raw, 0o644)
	}
	if _, err := OpenTraining([]TrainSource{{Dir: a}, {Dir: b}}, TrainOptions{Type: TypeText, Tokenizer: other, RowLen: 32}); err == nil || !strings.Contains(err.Error(), "another tokenizer") {
		t.Errorf("another tokenizer: %v", err)
	}
}
