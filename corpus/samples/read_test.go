package samples_test

import (
	"context"
	"testing"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/corpus/samples"
)

// Samples, Pairs and Documents read every record of their files: each
// origin appears, and stopping early stops without error.
func TestReadEmbedded(t *testing.T) {
	ctx := context.Background()
	byOrigin := map[corpus.Origin]int{}
	for s, err := range samples.Samples(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		byOrigin[s.Origin]++
	}
	for _, f := range samples.InstructionFiles() {
		if byOrigin[f.Origin] == 0 {
			t.Errorf("no %s samples read from %s", f.Origin, f.Name)
		}
	}
	pairs := 0
	for p, err := range samples.Pairs(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Chosen) == 0 || len(p.Rejected) == 0 {
			t.Fatalf("pair %s has an empty side", p.ID)
		}
		pairs++
	}
	docs := 0
	for d, err := range samples.Documents(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if d.Text == "" || d.Line != docs+1 {
			t.Fatalf("document %d: line %d, %d bytes", docs, d.Line, len(d.Text))
		}
		docs++
	}
	if pairs < 10 || docs < 10 {
		t.Errorf("%d pairs, %d documents; the sample files hold more", pairs, docs)
	}
	for _, err := range samples.Samples(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
}
