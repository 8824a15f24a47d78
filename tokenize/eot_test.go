package tokenize

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestStopAndPadIDs(t *testing.T) {
	texts := slices.Values([]string{strings.Repeat("Ala ma kota, a kot ma Alę. ", 50)})
	tr, err := TrainBPE(context.Background(), texts, BPETrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := tr.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	eot, _ := tok.TokenToID("<|eot_id|>")
	eos, _ := tok.TokenToID(tok.Config().EOSToken)
	stops := tok.StopIDs()
	if len(stops) == 0 || stops[0] != eot || !slices.Contains(stops, eos) {
		t.Fatalf("StopIDs = %v, want <|eot_id|> (%d) first and EOS (%d)", stops, eot, eos)
	}
	if pad := tok.PadID(); pad < 0 || pad >= tok.VocabSize() {
		t.Fatalf("PadID %d outside the vocabulary", pad)
	}
}
