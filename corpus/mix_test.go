package corpus

import (
	"fmt"
	"reflect"
	"testing"
)

func corpusOf(origin Origin, sources, perSource int) []Sample {
	var out []Sample
	for s := range sources {
		for i := range perSource {
			out = append(out, Sample{ID: fmt.Sprintf("%s-%d-%d", origin, s, i), Origin: origin,
				Type: []string{"QA", "Dialog"}[i%2], Sources: []string{fmt.Sprintf("ds%d", s)},
				Messages: []Message{{RoleUser, "q"}, {RoleAssistant, "a"}}})
		}
	}
	return out
}

func TestMixCapsAndProportions(t *testing.T) {
	var all []Sample
	all = append(all, corpusOf(OriginOrganic, 1, 500)...)
	all = append(all, corpusOf(OriginConverted, 3, 1500)...) // capped to 3 × 1,000
	all = append(all, corpusOf(OriginSynthetic, 1, 100)...)
	opts := DefaultMixOptions()
	opts.Proportions = map[Origin]float64{OriginOrganic: 0.5, OriginConverted: 0.4, OriginSynthetic: 0.1}
	mix, rep, err := Mix(all, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Organic limits the mix: 500 / 0.5 = 1,000 samples.
	count := map[Origin]int{}
	for _, s := range mix {
		count[s.Origin]++
	}
	if len(mix) != 1000 || count[OriginOrganic] != 500 || count[OriginConverted] != 400 || count[OriginSynthetic] != 100 {
		t.Fatalf("mix of %d: %v", len(mix), count)
	}
	if rep.Taken+rep.Dropped != len(all) {
		t.Errorf("report %d + %d != %d", rep.Taken, rep.Dropped, len(all))
	}
	for _, l := range append(rep.ByOrigin, rep.BySource...) {
		if l.Available != l.Capped+l.Trimmed+l.Taken {
			t.Errorf("line %+v does not add up", l)
		}
	}
	conv := rep.ByOrigin[1]
	if conv.Key != "converted" || conv.Capped != 1500 || conv.Taken != 400 || conv.Share != 40 {
		t.Errorf("converted line %+v", conv)
	}
	again, _, _ := Mix(all, opts)
	if !reflect.DeepEqual(mix, again) {
		t.Error("same seed, different mix")
	}
	opts.Seed = 2
	other, _, _ := Mix(all, opts)
	if reflect.DeepEqual(mix, other) {
		t.Error("another seed, same mix")
	}
}

func TestMixErrors(t *testing.T) {
	all := corpusOf(OriginOrganic, 1, 10)
	for name, opts := range map[string]MixOptions{
		"missing origin": {Proportions: map[Origin]float64{OriginSynthetic: 1}},
		"too many":       {Total: 11},
		"negative":       {Proportions: map[Origin]float64{OriginOrganic: -1}},
		"short":          {Proportions: map[Origin]float64{OriginOrganic: 1}, Total: 20},
	} {
		if _, _, err := Mix(all, opts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	mix, rep, err := Mix(all, MixOptions{Total: 4})
	if err != nil || len(mix) != 4 || rep.Dropped != 6 {
		t.Errorf("total 4: %d, %+v, %v", len(mix), rep, err)
	}
}

func TestSplitStratified(t *testing.T) {
	var all []Sample
	all = append(all, corpusOf(OriginOrganic, 1, 100)...)
	all = append(all, corpusOf(OriginSynthetic, 1, 20)...)
	train, valid, err := Split(all, SplitOptions{Validation: 0.1, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(valid) != 12 || len(train) != 108 {
		t.Fatalf("split %d/%d", len(train), len(valid))
	}
	strata := map[string]int{}
	for _, s := range valid {
		strata[string(s.Origin)+"/"+s.Type]++
	}
	want := map[string]int{"organic/QA": 5, "organic/Dialog": 5, "synthetic/QA": 1, "synthetic/Dialog": 1}
	if !reflect.DeepEqual(strata, want) {
		t.Errorf("validation strata %v, want %v", strata, want)
	}
	_, valid2, _ := Split(all, SplitOptions{Validation: 0.1, Seed: 7})
	if !reflect.DeepEqual(valid, valid2) {
		t.Error("same seed, different split")
	}
	if _, _, err := Split(all, SplitOptions{Validation: 1}); err == nil {
		t.Error("validation share 1 accepted")
	}
}
