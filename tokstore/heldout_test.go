package tokstore

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pltune/pltune/tokenize"
)

// countRows is n one-token rows, row i holding token i.
type countRows int

func (c countRows) Len() int { return int(c) }
func (c countRows) Row(i int) (tokenize.PackedRow, error) {
	return tokenize.Sequence{IDs: []int{i}, Labels: []int{i}}.Row(), nil
}
func (c countRows) Tokens(int) int      { return 1 }
func (c countRows) Fingerprint() string { return fmt.Sprintf("count%d", int(c)) }

func TestSplitHeldOut(t *testing.T) {
	src := countRows(103)
	train, held := SplitHeldOut(src, 0.05, 9)
	ids := make([]int, src.Len())
	for i := range ids {
		ids[i] = i
	}
	wantTrain, wantHeld := tokenize.SplitHeldOut(ids, 0.05, 9)
	for _, c := range []struct {
		name string
		rows Rows
		want []int
	}{{"train", train, wantTrain}, {"held", held, wantHeld}} {
		var got []int
		for i := range c.rows.Len() {
			r, err := c.rows.Row(i)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, r.IDs[0])
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s rows %v, want %v (tokenize.SplitHeldOut)", c.name, got, c.want)
		}
		if _, err := c.rows.Row(c.rows.Len()); err == nil {
			t.Errorf("%s: a row past the end read without error", c.name)
		}
	}
	if train.Fingerprint() == held.Fingerprint() || train.Fingerprint() == src.Fingerprint() {
		t.Errorf("fingerprints %q, %q, source %q: the parts must differ from each other and the source", train.Fingerprint(), held.Fingerprint(), src.Fingerprint())
	}
	if tr, h := SplitHeldOut(src, 0, 9); tr != Rows(src) || h != nil {
		t.Error("frac 0: want the source itself and no held-out rows")
	}
}
