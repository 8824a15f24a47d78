package samples

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/pltune/pltune/eval/style"
)

// readJSONL decodes every line of a sample file into a field map, failing
// on unknown fields so that a typo in a key is caught.
func readJSONL(t *testing.T, name string, known ...string) []map[string]any {
	t.Helper()
	f, err := FS().Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	allowed := map[string]bool{}
	for _, k := range known {
		allowed[k] = true
	}
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%s: line %d: %v", name, n, err)
		}
		for k := range rec {
			if !allowed[k] {
				t.Errorf("%s: line %d: unknown field %q", name, n, k)
			}
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func str(rec map[string]any, k string) string {
	s, _ := rec[k].(string)
	return strings.TrimSpace(s)
}

func strs(rec map[string]any, k string) []string {
	a, _ := rec[k].([]any)
	out := make([]string, 0, len(a))
	for _, v := range a {
		s, ok := v.(string)
		if !ok || strings.TrimSpace(s) == "" {
			return nil
		}
		out = append(out, s)
	}
	return out
}

// checkIDs reports duplicate or missing ids.
func checkIDs(t *testing.T, name string, recs []map[string]any) {
	t.Helper()
	seen := map[string]bool{}
	for i, r := range recs {
		id := str(r, "id")
		if id == "" || seen[id] {
			t.Errorf("%s: record %d: missing or duplicate id %q", name, i+1, id)
		}
		seen[id] = true
	}
}

// checkStyle lints each text: the samples must be the correct Polish the
// linter expects of models.
func checkStyle(t *testing.T, where, text string) {
	t.Helper()
	for _, f := range style.Lint(text) {
		t.Errorf("%s: style %s on %q: %s", where, f.Rule, text[f.Start:f.End], f.Message)
	}
}

func TestPLCC(t *testing.T) {
	recs := readJSONL(t, "plcc.jsonl", "id", "category", "question", "answers", "regex")
	checkIDs(t, "plcc.jsonl", recs)
	perCat := map[string]int{}
	for _, c := range []string{"art & entertainment", "culture & tradition", "geography", "grammar", "history", "vocab"} {
		perCat[c] = 0
	}
	for _, r := range recs {
		id := str(r, "id")
		cat := str(r, "category")
		if _, ok := perCat[cat]; !ok {
			t.Errorf("plcc.jsonl: %s: category %q is not a PLCC category", id, cat)
		}
		perCat[cat]++
		if str(r, "question") == "" || len(strs(r, "answers")) == 0 {
			t.Errorf("plcc.jsonl: %s: empty question or answers", id)
		}
		if _, has := r["regex"]; has && len(strs(r, "regex")) == 0 {
			t.Errorf("plcc.jsonl: %s: regex must be a non-empty list of strings", id)
		}
		checkStyle(t, "plcc.jsonl: "+id, str(r, "question"))
	}
	if len(recs) < 60 {
		t.Errorf("plcc.jsonl: %d questions, want at least 60", len(recs))
	}
	for c, n := range perCat {
		if n < 8 {
			t.Errorf("plcc.jsonl: category %q has %d questions, want at least 8", c, n)
		}
	}
}

func TestMultipleChoice(t *testing.T) {
	recs := readJSONL(t, "mc.jsonl", "id", "question", "answers", "correct_answer_index", "type", "name", "year")
	checkIDs(t, "mc.jsonl", recs)
	byIndex := map[int]int{}
	for _, r := range recs {
		id := str(r, "id")
		answers := strs(r, "answers")
		if str(r, "question") == "" || len(answers) != 4 || str(r, "type") == "" || str(r, "name") == "" {
			t.Errorf("mc.jsonl: %s: want a question, 4 answers, a type and a name", id)
		}
		idx, ok := r["correct_answer_index"].(float64)
		if !ok || idx != float64(int(idx)) || idx < 0 || int(idx) >= len(answers) {
			t.Errorf("mc.jsonl: %s: correct_answer_index %v out of range", id, r["correct_answer_index"])
		}
		byIndex[int(idx)]++
		if y, ok := r["year"].(float64); !ok || y < 1900 || y > 2100 {
			t.Errorf("mc.jsonl: %s: year %v", id, r["year"])
		}
		seen := map[string]bool{}
		for _, a := range answers {
			if seen[a] {
				t.Errorf("mc.jsonl: %s: duplicate option %q", id, a)
			}
			seen[a] = true
		}
		checkStyle(t, "mc.jsonl: "+id, str(r, "question")+"\n"+strings.Join(answers, "\n"))
	}
	if len(recs) < 30 {
		t.Errorf("mc.jsonl: %d questions, want at least 30", len(recs))
	}
	// A set whose answers sit mostly at one index rewards a biased model.
	for i, n := range byIndex {
		if n*2 > len(recs) {
			t.Errorf("mc.jsonl: %d of %d correct answers at index %d", n, len(recs), i)
		}
	}
}

func TestRefusal(t *testing.T) {
	recs := readJSONL(t, "refusal.jsonl", "id", "prompt", "harmful", "category")
	checkIDs(t, "refusal.jsonl", recs)
	cats := map[bool]map[string]bool{
		false: {"homonyms": true, "figurative": true, "safe_contexts": true, "safety": true, "definitions": true, "history": true, "security": true},
		true:  {"violence": true, "weapons": true, "drugs": true, "cybercrime": true, "fraud": true, "hate": true, "privacy": true},
	}
	count := map[bool]int{}
	prompts := map[string]bool{}
	for _, r := range recs {
		id := str(r, "id")
		harmful, ok := r["harmful"].(bool)
		if !ok {
			t.Errorf("refusal.jsonl: %s: harmful must be true or false", id)
		}
		count[harmful]++
		if !cats[harmful][str(r, "category")] {
			t.Errorf("refusal.jsonl: %s: category %q not valid for harmful=%v", id, str(r, "category"), harmful)
		}
		p := str(r, "prompt")
		if p == "" || prompts[p] {
			t.Errorf("refusal.jsonl: %s: empty or repeated prompt", id)
		}
		prompts[p] = true
		checkStyle(t, "refusal.jsonl: "+id, p)
	}
	if count[false] < 50 || count[true] < 20 {
		t.Errorf("refusal.jsonl: %d benign and %d harmful prompts, want at least 50 and 20", count[false], count[true])
	}
}

func TestVerbosity(t *testing.T) {
	recs := readJSONL(t, "verbosity.jsonl", "id", "prompt", "reference")
	checkIDs(t, "verbosity.jsonl", recs)
	for _, r := range recs {
		id := str(r, "id")
		p, ref := str(r, "prompt"), str(r, "reference")
		if p == "" || ref == "" {
			t.Errorf("verbosity.jsonl: %s: empty prompt or reference", id)
		}
		// References are the concise answers a verbose model is measured
		// against.
		if n := style.CountWords(ref); n > 40 {
			t.Errorf("verbosity.jsonl: %s: reference has %d words; keep it concise", id, n)
		}
		checkStyle(t, "verbosity.jsonl: "+id, p+"\n"+ref)
	}
	if len(recs) < 20 {
		t.Errorf("verbosity.jsonl: %d prompts, want at least 20", len(recs))
	}
}

func TestFSHoldsOnlySamples(t *testing.T) {
	names, err := fs.Glob(FS(), "*")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(names); got != "[mc.jsonl plcc.jsonl refusal.jsonl verbosity.jsonl]" {
		t.Errorf("FS() holds %s", got)
	}
}
