package corpus

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

func testSamples(t *testing.T) []Sample {
	t.Helper()
	var all []Sample
	for _, f := range []string{"pllumic.json", "openai.jsonl", "sharegpt.jsonl", "alpaca.jsonl"} {
		s, _ := readAll(t, filepath.Join("testdata", f), Options{Origin: OriginConverted})
		all = append(all, s...)
	}
	all[0].Meta = map[string]any{"annotator": "A3", "checked": true}
	return all
}

func TestRoundTripSamples(t *testing.T) {
	all := testSamples(t)
	for _, f := range []Format{PLLuMIC, PLLuMICJSONL, OpenAI, ShareGPT, Alpaca, PLLuMICParquet, OpenAIParquet, ShareGPTParquet, AlpacaParquet} {
		t.Run(string(f), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			w, err := Create(path, f)
			if err != nil {
				t.Fatal(err)
			}
			var want []Sample
			for i := range all {
				err := w.WriteSample(&all[i])
				if f.base() == Alpaca && len(all[i].Messages) != 2 {
					if !errors.Is(err, ErrNotRepresentable) {
						t.Fatalf("multi-turn sample as Alpaca: %v", err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, all[i])
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got, err := DetectFormat(path); err != nil || got != f {
				t.Errorf("DetectFormat = %s, %v", got, err)
			}
			got, _ := readAll(t, path, Options{})
			if !reflect.DeepEqual(got, want) {
				for i := range min(len(got), len(want)) {
					if !reflect.DeepEqual(got[i], want[i]) {
						t.Errorf("sample %d\n got %#v\nwant %#v", i, got[i], want[i])
						break
					}
				}
				t.Fatalf("round trip: %d samples back, %d written", len(got), len(want))
			}
		})
	}
}

func TestRoundTripPairs(t *testing.T) {
	pairs := append(readPairs(t, "testdata/preference.jsonl", Options{}), readPairs(t, "testdata/triples.jsonl", Options{})...)
	// A pair whose responses open alike: the writer must name the prompt.
	pairs = append(pairs, PreferencePair{ID: "same-start",
		Prompt:   []Message{{RoleUser, "Policz do dwóch."}},
		Chosen:   []Message{{RoleAssistant, "Jeden."}, {RoleUser, "Dalej?"}, {RoleAssistant, "Dwa."}},
		Rejected: []Message{{RoleAssistant, "Jeden."}, {RoleUser, "Dalej?"}, {RoleAssistant, "Trzy."}}})
	for _, f := range []Format{Preference, Triples, PreferenceParquet, TriplesParquet} {
		t.Run(string(f), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out")
			w, err := Create(path, f)
			if err != nil {
				t.Fatal(err)
			}
			var want []PreferencePair
			for i := range pairs {
				err := w.WritePair(&pairs[i])
				if f.base() == Triples && len(pairs[i].Chosen) != 1 {
					if !errors.Is(err, ErrNotRepresentable) {
						t.Fatalf("multi-turn pair as triples: %v", err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				p := pairs[i]
				if f.base() == Triples {
					p.ChosenRating, p.RejectedRating = nil, nil
				}
				want = append(want, p)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := readPairs(t, path, Options{})
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestWriterRefuses(t *testing.T) {
	w, _ := NewWriter(new(discard), OpenAI)
	if err := w.WritePair(&PreferencePair{}); !errors.Is(err, ErrNotRepresentable) {
		t.Errorf("pair to openai: %v", err)
	}
	w, _ = NewWriter(new(discard), Preference)
	if err := w.WriteSample(&Sample{}); !errors.Is(err, ErrNotRepresentable) {
		t.Errorf("sample to preference: %v", err)
	}
	if _, err := NewWriter(new(discard), FormatAuto); err == nil {
		t.Error("writer with format auto")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
