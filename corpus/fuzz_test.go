package corpus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"
)

// checkRead reads in leniently as format f and checks the invariants every
// input must keep: no panic, exact accounting, every sample yielded valid,
// one well-formed quarantine line per rejected record.
func checkRead(t *testing.T, in []byte, f Format) (fatal error) {
	var q bytes.Buffer
	r, err := NewReader(bytes.NewReader(in), "fuzz", Options{Format: f, Policy: Lenient, Quarantine: &q,
		Limits: Limits{MaxRecordBytes: 1 << 12}})
	if err != nil {
		return err
	}
	if f.IsPreference() {
		for p, err := range r.Pairs(context.Background()) {
			if err != nil {
				fatal = err
				continue
			}
			if err := ValidatePair(&p, DefaultLimits()); err != nil {
				t.Fatalf("yielded an invalid pair: %v", err)
			}
		}
	} else {
		for s, err := range r.Samples(context.Background()) {
			if err != nil {
				fatal = err
				continue
			}
			if err := Validate(&s, DefaultLimits()); err != nil {
				t.Fatalf("yielded an invalid sample: %v", err)
			}
		}
	}
	a := r.Accounting()
	if a.Read != a.Accepted+a.Rejected {
		t.Fatalf("accounting %+v does not add up", a)
	}
	lines := int64(0)
	sc := bufio.NewScanner(&q)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ql quarantineLine
		if err := json.Unmarshal(sc.Bytes(), &ql); err != nil || ql.Reason == "" {
			t.Fatalf("quarantine line %q: %v", sc.Bytes(), err)
		}
		lines++
	}
	structural := int64(0)
	var re *RecordError
	if errors.As(fatal, &re) {
		structural = 1 // a broken file structure is counted but not quarantined
	}
	if lines+structural != a.Rejected {
		t.Fatalf("%d quarantine lines for %d rejected records", lines, a.Rejected)
	}
	return fatal
}

func addSeeds(f *testing.F, files ...string) {
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzReadPLLuMIC(f *testing.F) {
	addSeeds(f, "pllumic.json")
	f.Add([]byte(`[{"conv_id":"a\"]","messages":[{"role":"user","content":"[{","seq":0}]}, 3, "x", [1,[2]]]`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, in []byte) {
		fatal := checkRead(t, in, PLLuMIC)
		// A syntactically valid array must never be reported as broken.
		trimmed := bytes.TrimSpace(in)
		if json.Valid(in) && len(trimmed) > 0 && trimmed[0] == '[' && errors.Is(fatal, ErrMalformedJSON) {
			t.Fatalf("valid JSON array reported broken: %v", fatal)
		}
	})
}

func FuzzReadJSONL(f *testing.F) {
	addSeeds(f, "openai.jsonl", "sharegpt.jsonl", "alpaca.jsonl", "invalid.jsonl")
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, format := range []Format{OpenAI, ShareGPT, Alpaca, PLLuMICJSONL} {
			if err := checkRead(t, in, format); err != nil {
				t.Fatalf("%s: a JSONL read ended early: %v", format, err)
			}
		}
	})
}

func FuzzReadPreference(f *testing.F) {
	addSeeds(f, "preference.jsonl", "triples.jsonl")
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, format := range []Format{Preference, Triples} {
			if err := checkRead(t, in, format); err != nil {
				t.Fatalf("%s: a JSONL read ended early: %v", format, err)
			}
		}
	})
}

func FuzzReadParquet(f *testing.F) {
	for _, format := range []Format{OpenAIParquet, PLLuMICParquet} {
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, format)
		for _, s := range testSamplesF(f) {
			w.WriteSample(&s)
		}
		w.Close()
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, format := range []Format{FormatAuto, OpenAIParquet, PLLuMICParquet, PreferenceParquet} {
			checkRead(t, in, format)
		}
	})
}

func FuzzDetect(f *testing.F) {
	addSeeds(f, "openai.jsonl", "pllumic.json", "triples.jsonl")
	f.Fuzz(func(t *testing.T, in []byte) {
		path := filepath.Join(t.TempDir(), "in")
		if err := os.WriteFile(path, in, 0o644); err != nil {
			t.Fatal(err)
		}
		if format, err := DetectFormat(path); err == nil {
			if _, err := ParseFormat(string(format)); err != nil || format == FormatAuto {
				t.Fatalf("detected %q", format)
			}
		}
	})
}

func testSamplesF(f *testing.F) []Sample {
	var out []Sample
	for s, err := range ReadSamples(context.Background(), "testdata/pllumic.json", Options{Origin: OriginOrganic}) {
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// FuzzDecodeAgreement checks unmarshal (go-json behind encoding/json's
// syntax check) against encoding/json on every record shape: same
// acceptance, same values.
func FuzzDecodeAgreement(f *testing.F) {
	addSeeds(f, "openai.jsonl", "sharegpt.jsonl", "alpaca.jsonl", "preference.jsonl", "triples.jsonl")
	f.Add([]byte(`{"messages":[{"role":"user","content":"\ud800 \u0000 \\"}],"id":1e400}`))
	f.Add([]byte(`[{"conv_id":1,"messages":[{"role":"user","content":"a","seq":1.5,"source":["x",{"a":1}]}]}]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if !utf8.Valid(in) {
			return // readers reject these before decoding
		}
		for _, newV := range []func() any{
			func() any { return new(openAIRecord) }, func() any { return new(shareGPTRecord) },
			func() any { return new(alpacaRecord) }, func() any { return new(pllumicRecord) },
			func() any { return new(preferenceRecord) }, func() any { return new(triplesRecord) },
		} {
			fast, std := newV(), newV()
			errFast := unmarshal(in, fast)
			errStd := json.Unmarshal(in, std)
			if (errFast == nil) != (errStd == nil) {
				t.Fatalf("%T: unmarshal says %v, encoding/json %v", fast, errFast, errStd)
			}
			if errFast == nil && !reflect.DeepEqual(fast, std) {
				t.Fatalf("%T: decoders differ:\n%+v\n%+v", fast, fast, std)
			}
		}
	})
}
