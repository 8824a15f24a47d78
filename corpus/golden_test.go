package corpus

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestWritePLLuMICGolden pins the PLLuMIC writer's bytes: the released
// file's shape, a system message at seq -1 (empty when the sample has none),
// each user/assistant pair sharing a seq, every message carrying language,
// type, subtype and source.
func TestWritePLLuMICGolden(t *testing.T) {
	samples := testSamples(t)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, PLLuMIC)
	if err != nil {
		t.Fatal(err)
	}
	for i := range samples[:4] {
		if err := w.WriteSample(&samples[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/golden/pllumic_written.json"
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("PLLuMIC output differs from %s (run with -update after checking):\n%s", golden, buf.String())
	}
	var convs []struct {
		Messages []struct {
			Role     string   `json:"role"`
			Seq      int      `json:"seq"`
			Language string   `json:"language"`
			Source   []string `json:"source"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(buf.Bytes(), &convs); err != nil {
		t.Fatal(err)
	}
	for c, conv := range convs {
		for i, m := range conv.Messages {
			if want := (i+1)/2 - 1; m.Seq != want && !(i == 0 && m.Seq == -1) || m.Source == nil || m.Language != "pol" {
				t.Errorf("conversation %d message %d: %+v", c, i, m)
			}
		}
		if conv.Messages[0].Role != "system" || conv.Messages[0].Seq != -1 {
			t.Errorf("conversation %d does not open with the system message at seq -1", c)
		}
	}
}
