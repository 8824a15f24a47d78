package align

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestReferenceFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reference_logps.json")
	saved := &DPO{Pairs: fixedPairs(), Reference: []RefLogProbs{{-1.5, -2}, {-3, -0.25}, {-7, -8}}}
	if err := saved.SaveReference(path, "base"); err != nil {
		t.Fatal(err)
	}
	changed := fixedPairs()
	changed[2].Rejected.IDs[3] = 1
	for _, tc := range []struct {
		name   string
		o      *DPO
		source string
		want   bool
	}{
		{"same pairs and source", &DPO{Pairs: fixedPairs()}, "base", true},
		{"other source", &DPO{Pairs: fixedPairs()}, "ref/", false},
		{"a token changed", &DPO{Pairs: changed}, "base", false},
		{"fewer pairs", &DPO{Pairs: fixedPairs()[:2]}, "base", false},
	} {
		ok, err := tc.o.LoadReference(path, tc.source)
		if err != nil || ok != tc.want {
			t.Errorf("%s: LoadReference = %v, %v; want %v", tc.name, ok, err, tc.want)
		}
		if ok && !slices.Equal(tc.o.Reference, saved.Reference) {
			t.Errorf("%s: loaded %v, saved %v", tc.name, tc.o.Reference, saved.Reference)
		}
	}
	if ok, err := (&DPO{}).LoadReference(filepath.Join(t.TempDir(), "none.json"), "base"); ok || err != nil {
		t.Errorf("missing file: %v, %v; want false, nil", ok, err)
	}
	os.WriteFile(path, []byte("{"), 0o644)
	if _, err := (&DPO{}).LoadReference(path, "base"); err == nil {
		t.Error("a corrupt file was accepted")
	}
}
