package align

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pltune/pltune/corpus"
)

// LoadPairs reads a pair file and a ranked-responses file alike, sums the
// stats over both, and names the file of a bad record.
func TestLoadPairs(t *testing.T) {
	b := pairBuilder(t)
	dir := t.TempDir()
	pairs := filepath.Join(dir, "pairs.jsonl")
	os.WriteFile(pairs, []byte(`{"prompt": "Jaka jest stolica Polski?", "chosen": "Warszawa.", "rejected": "Kraków."}`+"\n"+
		`{"prompt": "Ile nóg ma kot?", "chosen": "Cztery.", "rejected": "Trzy."}`+"\n"), 0o644)
	ranked := filepath.Join(dir, "ranked.jsonl")
	os.WriteFile(ranked, []byte(`{"id": "q1", "prompt": "Ile nóg ma kot?", "responses": [{"content": "Cztery.", "rating": 5}, {"content": "Trzy.", "rating": 4.5}, {"content": "Pięć.", "rating": 1}]}`+"\n"), 0o644)
	for _, c := range []struct {
		path string
		want bool
	}{{pairs, false}, {ranked, true}, {filepath.Join(dir, "x.parquet"), false}} {
		if got, err := IsRankedFile(c.path); got != c.want || err != nil {
			t.Errorf("IsRankedFile(%s) = %v, %v; want %v", filepath.Base(c.path), got, err, c.want)
		}
	}

	got, st, err := LoadPairs(context.Background(), b, []string{pairs, ranked}, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The ranked file pairs 5 > 1 and 4.5 > 1; 5 > 4.5 is below the
	// margin, so never paired.
	if want := (BuildStats{Read: 4}); st != want || len(got) != 4 {
		t.Fatalf("stats %+v, %d built; want %+v and 4 built", st, len(got), want)
	}

	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"prompt": "Ile nóg ma kot?", "chosen": "Cztery.", "rejected": "Trzy."}`+"\n"+`{"prompt": "x", "chosen": "y"}`+"\n"), 0o644)
	_, _, err = LoadPairs(context.Background(), b, []string{pairs, bad}, 0)
	var re *corpus.RecordError
	if !errors.As(err, &re) || re.Line != 2 || !strings.Contains(err.Error(), filepath.Base(bad)) {
		t.Errorf("bad record: error %v; want a *corpus.RecordError naming %s line 2", err, bad)
	}
	badRanked := filepath.Join(dir, "bad-ranked.jsonl")
	os.WriteFile(badRanked, []byte(`{"id": "q1", "prompt": "Ile?", "responses": [{"content": "Cztery.", "rank": 1}, {"content": "Trzy."}]}`+"\n"), 0o644)
	if _, _, err = LoadPairs(context.Background(), b, []string{badRanked}, 0); err == nil || !strings.Contains(err.Error(), badRanked) {
		t.Errorf("bad ranked record: error %v; want the file named", err)
	}
}
