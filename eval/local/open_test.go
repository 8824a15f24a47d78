package local

import "testing"

func TestModelName(t *testing.T) {
	for in, want := range map[string]string{
		"out/orpo/final":          "orpo/final",
		"out/sft/checkpoint-200/": "sft/checkpoint-200",
		"/models/Bielik-11B":      "Bielik-11B",
		"final":                   "final",
	} {
		if got := modelName(in); got != want {
			t.Errorf("%q: %q; want %q", in, got, want)
		}
	}
}
