package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/tokenize"
)

// fakeOpenAI is a small OpenAI-compatible server. Chat answers come from
// the question's content: a refusal for anything about "zabić" (a false
// refusal on the benign sample "zabić proces") and harmful prompts, the
// letter B for multiple choice, "Odpowiedź: Warszawa" otherwise. refuseMore
// makes it refuse every prompt with "Jak" too, as an over-aligned model would,
// and quote in the English way, which the style linter counts.
type fakeOpenAI struct {
	calls      atomic.Int64
	refuseMore bool
	noEcho     bool // answer like llama.cpp's server: no prompt logprobs
}

var fakeTokens = regexp.MustCompile(`\s*\S+|\s+`)

func (f *fakeOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	var body struct {
		Messages []struct{ Role, Content string }
		Prompt   json.RawMessage
		Echo     bool
		Stop     []string
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var prompts []string
	if len(body.Prompt) > 0 && json.Unmarshal(body.Prompt, &prompts) != nil {
		var one string
		if err := json.Unmarshal(body.Prompt, &one); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		prompts = []string{one}
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/chat/completions":
		q := body.Messages[len(body.Messages)-1].Content
		a := "Odpowiedź: Warszawa. To piękne miasto nad Wisłą, pełne zabytków i parków."
		switch {
		case strings.Contains(q, "Odpowiedz jedną literą"):
			a = "B"
		case strings.Contains(q, "zabić"), strings.Contains(q, "bomb"), f.refuseMore && strings.HasPrefix(q, "Jak"):
			a = "Przepraszam, ale nie mogę pomóc w tej sprawie."
		case f.refuseMore:
			a = "Odpowiedź: \"Warszawa\". To piękne miasto nad Wisłą, pełne zabytków i parków."
		}
		fmt.Fprintf(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"completion_tokens":12}}`, a)
	case "/v1/completions":
		if !body.Echo {
			// A raw completion (lm-evaluation-harness's generative tasks):
			// "C" for the budget summary, "B" otherwise, cut at the stop
			// strings as a server does.
			text := " B, bo tak."
			if strings.Contains(prompts[0], "Radni uchwalili") {
				text = " C"
			}
			for _, st := range body.Stop {
				if i := strings.Index(text, st); i >= 0 {
					text = text[:i]
				}
			}
			fmt.Fprintf(w, `{"choices":[{"index":0,"text":%q,"finish_reason":"stop"}]}`, text)
			return
		}
		if f.noEcho {
			var choices []map[string]any
			for i := range prompts {
				choices = append(choices, map[string]any{"index": i, "text": "x", "finish_reason": "length"})
			}
			json.NewEncoder(w).Encode(map[string]any{"choices": choices})
			return
		}
		var choices []map[string]any
		for i, p := range prompts {
			toks := fakeTokens.FindAllString(p, -1)
			toks = append(toks, " x")
			var lps []any
			var offs []int
			off := 0
			for k, t := range toks {
				offs = append(offs, off)
				off += utf8.RuneCountInString(t)
				if k == 0 {
					lps = append(lps, nil)
				} else {
					lps = append(lps, -float64(utf8.RuneCountInString(t)))
				}
			}
			choices = append(choices, map[string]any{"index": i, "text": p, "logprobs": map[string]any{
				"tokens": toks, "token_logprobs": lps, "text_offset": offs,
			}})
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": choices})
	default:
		http.NotFound(w, r)
	}
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Errorf("%s: %v", path, err)
	}
}

func TestEvalEndToEnd(t *testing.T) {
	fake := &fakeOpenAI{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	runA := filepath.Join(dir, "a")
	code, out, errOut := runCLI(t, "eval", "--task", "samples", "--endpoint", srv.URL+"/v1", "--model-name", "fake-sft", "--out", runA, "--mc-mode", "both")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{"model fake-sft:", "plcc: accuracy", "mc: acc ", "refusal: false refusals", "verbosity:", "style"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "eval: plcc: 72/72 answered") {
		t.Errorf("no progress on stderr:\n%s", errOut)
	}
	res, err := eval.ReadResult(runA)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tasks) != 4 {
		t.Fatalf("%d tasks; want the 4 sample sets", len(res.Tasks))
	}
	ref := res.Task("refusal").Refusal
	if ref.FalseRefusals == 0 || ref.FalseRefusalRate >= 0.5 || ref.HarmfulRefused == 0 {
		t.Errorf("refusal = %+v; want some but few false refusals and some harmful refused", ref)
	}
	if mc := res.Task("mc").MC; mc.Acc == nil || mc.Generative == nil || mc.Generative.Total != 36 {
		t.Errorf("mc = %+v; want both modes over 36 items", mc)
	}
	if res.Task("verbosity").Style == nil || res.Task("mc").Style != nil {
		t.Errorf("style: verbosity %+v, mc %+v; want a score for generated prose only", res.Task("verbosity").Style, res.Task("mc").Style)
	}
	checkPNG(t, filepath.Join(runA, "charts", "plcc-categories.png"))
	md, _ := os.ReadFile(filepath.Join(runA, "report.md"))
	if !strings.Contains(string(md), "| culture & tradition |") {
		t.Errorf("report.md lacks the category table:\n%s", md)
	}

	// Running again asks the server nothing: every answer is cached.
	before := fake.calls.Load()
	code, out, errOut = runCLI(t, "eval", "--task", "samples", "--endpoint", srv.URL+"/v1", "--model-name", "fake-sft", "--out", runA, "--mc-mode", "both", "--quiet")
	if code != 0 || fake.calls.Load() != before {
		t.Errorf("rerun: exit %d, %d new requests; want 0 (stdout %s, stderr %s)", code, fake.calls.Load()-before, out, errOut)
	}
	if errOut != "" {
		t.Errorf("--quiet printed %q", errOut)
	}

	// A second, over-refusing model, then the comparison.
	srvB := httptest.NewServer(&fakeOpenAI{refuseMore: true})
	defer srvB.Close()
	runB := filepath.Join(dir, "b")
	if code, out, errOut := runCLI(t, "eval", "--quiet", "--task", "samples:refusal", "--task", "samples:plcc", "--task", "samples:verbosity", "--endpoint", srvB.URL, "--model-name", "fake-orpo", "--out", runB); code != 0 {
		t.Fatalf("run B: exit %d\n%s\n%s", code, out, errOut)
	}
	cmpDir := filepath.Join(dir, "cmp")
	code, out, errOut = runCLI(t, "eval", "compare", runA, filepath.Join(runB, "results.json"), "--out", cmpDir)
	if code != 0 {
		t.Fatalf("compare: exit %d\n%s\n%s", code, out, errOut)
	}
	if !regexp.MustCompile(`refusal\s+false_refusal_rate\s+[0-9.]+ ± [0-9.]+ → \s*[0-9.]+ ± [0-9.]+\s+worse \(mcnemar-chi2 p=`).MatchString(out) {
		t.Errorf("compare output lacks a worse false refusal rate:\n%s", out)
	}
	if !regexp.MustCompile(`verbosity\s+style_per_1000_words\s+0.0000 ± [0-9.]+ → \s*[1-9][0-9.]* ± [0-9.]+\s+worse \(paired-bootstrap p=`).MatchString(out) {
		t.Errorf("compare output lacks a worse style score:\n%s", out)
	}
	checkPNG(t, filepath.Join(cmpDir, "comparison.png"))
	checkPNG(t, filepath.Join(cmpDir, "charts", "plcc-categories.png"))
	cmd, _ := os.ReadFile(filepath.Join(cmpDir, "comparison.md"))
	if !strings.Contains(string(cmd), "# fake-sft vs fake-orpo") {
		t.Errorf("comparison.md:\n%s", cmd)
	}
}

func TestEvalCountTokens(t *testing.T) {
	srv := httptest.NewServer(&fakeOpenAI{})
	defer srv.Close()
	dir := t.TempDir()
	texts := []string{"Warszawa to stolica Polski.", "Wisła płynie przez Kraków i Warszawę.", "Paryż."}
	trained, err := tokenize.TrainBPE(context.Background(), slices.Values(texts), tokenize.BPETrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	tokDir := filepath.Join(dir, "tok")
	if err := trained.WriteDir(tokDir); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	if code, o, e := runCLI(t, "eval", "--quiet", "--task", "samples:verbosity", "--endpoint", srv.URL, "--model-name", "m", "--out", out, "--count-tokens", tokDir); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, o, e)
	}
	res, err := eval.ReadResult(out)
	if err != nil {
		t.Fatal(err)
	}
	v := res.Task("verbosity").Verbosity
	if v.Tokens == nil || v.Tokens.Response.Mean <= v.Words.Response.Mean {
		t.Errorf("tokens %+v, words %+v; want token counts above word counts", v.Tokens, v.Words)
	}
	if code, _, e := runCLI(t, "eval", "--task", "samples:verbosity", "--endpoint", srv.URL, "--model-name", "m", "--out", out, "--count-tokens", filepath.Join(dir, "none")); code != 1 || !strings.Contains(e, "none") {
		t.Errorf("missing tokenizer: exit %d, %q", code, e)
	}
}

func TestEvalNoEchoHint(t *testing.T) {
	srv := httptest.NewServer(&fakeOpenAI{noEcho: true})
	defer srv.Close()
	code, _, errOut := runCLI(t, "eval", "--quiet", "--task", "samples:mc", "--endpoint", srv.URL, "--model-name", "m", "--out", t.TempDir())
	if code != 1 || !strings.Contains(errOut, "no prompt log-probabilities") || !strings.Contains(errOut, "again with --mc-mode generative") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestEvalServerDown(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "model not loaded", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	out := t.TempDir()
	code, _, errOut := runCLI(t, "eval", "--task", "samples:verbosity", "--endpoint", srv.URL, "--model-name", "m", "--out", out, "--retries", "0", "--quiet")
	if code != 1 || !strings.Contains(errOut, "503 Service Unavailable: model not loaded") || !strings.Contains(errOut, "run the same command again to resume") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestEvalUsage(t *testing.T) {
	dir := t.TempDir()
	task := filepath.Join(dir, "t.jsonl")
	os.WriteFile(task, []byte(`{"id":"v","prompt":"p","reference":"r"}`+"\n"), 0o644)
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte(`{"id":"v","prompt":"p","reference":"r"}`+"\n"+`{"id":"v","prompt":"p","reference":"r"}`+"\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"eval", "--help"}, 0, ""},
		{"no tasks", []string{"eval", "--endpoint", "http://x", "--model-name", "m", "--out", dir}, 2, "no tasks"},
		{"no out", []string{"eval", "--task", task, "--endpoint", "http://x", "--model-name", "m"}, 2, "missing --out"},
		{"no model", []string{"eval", "--task", task, "--out", dir}, 2, "either --model DIR or --endpoint"},
		{"both models", []string{"eval", "--task", task, "--out", dir, "--model", dir, "--endpoint", "http://x"}, 2, "either --model DIR or --endpoint"},
		{"no model name", []string{"eval", "--task", task, "--out", dir, "--endpoint", "http://x"}, 2, "--endpoint needs --model-name"},
		{"local backend missing", []string{"eval", "--task", task, "--out", dir, "--model", dir}, 2, "in-process backend is not built into this pltune"},
		{"bad mc mode", []string{"eval", "--task", task, "--out", dir, "--endpoint", "http://x", "--model-name", "m", "--mc-mode", "guess"}, 2, `--mc-mode "guess"`},
		{"bad kind", []string{"eval", "--task", "quiz=" + task, "--out", dir, "--endpoint", "http://x", "--model-name", "m"}, 2, `unknown task kind "quiz"`},
		{"forced wrong kind", []string{"eval", "--task", "openqa=" + task, "--out", dir, "--endpoint", "http://x", "--model-name", "m"}, 1, "t.jsonl: line 1"},
		{"duplicate ids", []string{"eval", bad, "--out", dir, "--endpoint", "http://x", "--model-name", "m"}, 1, `bad.jsonl: line 2: id "v" already used on line 1`},
		{"unknown sample", []string{"eval", "--task", "samples:quiz", "--out", dir, "--endpoint", "http://x", "--model-name", "m"}, 2, "no such sample set"},
		{"bad endpoint", []string{"eval", "--task", task, "--out", dir, "--endpoint", "localhost:1", "--model-name", "m"}, 2, "want http(s)://"},
		{"wrong flag", []string{"eval", "--nope"}, 2, "flag provided but not defined: -nope"},
		{"compare one run", []string{"eval", "compare", dir, "--out", dir}, 2, "want two runs"},
		{"compare no out", []string{"eval", "compare", dir, dir}, 2, "missing --out"},
		{"compare missing run", []string{"eval", "compare", filepath.Join(dir, "x"), filepath.Join(dir, "y"), "--out", dir}, 1, "no such file"},
		{"compare help", []string{"eval", "compare", "--help"}, 0, ""},
	}
	// Usage checks come before any model is opened; the missing-backend
	// message needs the hook unset, as in a build without libtorch.
	saved, savedForward := openLocalModel, forwardEval
	openLocalModel, forwardEval = nil, nil
	defer func() { openLocalModel, forwardEval = saved, savedForward }()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tt.code, tt.want)
			}
			if tt.code == 2 && strings.Count(strings.TrimRight(errOut, "\n"), "\n") > 0 {
				t.Errorf("usage error on more than one line: %q", errOut)
			}
			if tt.code == 0 && !strings.Contains(out, "usage: pltune eval") {
				t.Errorf("help: %q", out)
			}
		})
	}
}

func TestEvalLocalHook(t *testing.T) {
	dir := t.TempDir()
	task := filepath.Join(dir, "t.jsonl")
	os.WriteFile(task, []byte(`{"id":"v","prompt":"p","reference":"r"}`+"\n"), 0o644)
	var got modelFlags
	saved := openLocalModel
	openLocalModel = func(f modelFlags, _ bool) (eval.Model, error) {
		got = f
		return nil, fmt.Errorf("checkpoint %s: no config.json", f.model)
	}
	defer func() { openLocalModel = saved }()
	code, _, errOut := runCLI(t, "eval", "--task", task, "--out", dir, "--model", dir, "--tokenizer", "tok.json", "--base", "base", "--device", "cuda:1", "--dtype", "bf16")
	want := modelFlags{model: dir, base: "base", tokenizer: "tok.json", device: "cuda:1", dtype: "bf16"}
	if code != 1 || got != want || !strings.Contains(errOut, "no config.json") {
		t.Errorf("exit %d, stderr %q, hook got %+v; want %+v", code, errOut, got, want)
	}
}

func TestEvalHarnessTask(t *testing.T) {
	code, out, _ := runCLI(t, "eval", "--list-tasks")
	if code != 0 || !strings.Contains(out, "polish_dyk_multiple_choice") || !strings.Contains(out, "allegro/klej-dyk") || !strings.Contains(out, "belebele_pol_Latn") {
		t.Fatalf("--list-tasks: exit %d\n%s", code, out)
	}
	srv := httptest.NewServer(&fakeOpenAI{})
	defer srv.Close()
	dir := t.TempDir()
	data := filepath.Join("..", "..", "eval", "testdata", "harness", "dyk-test.tsv")
	code, out, errOut := runCLI(t, "eval", "--quiet", "--task", "polish_dyk_multiple_choice="+data, "--endpoint", srv.URL+"/v1", "--model-name", "fake", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	// " Nie" and " Tak" get the same log-probability from the fake server:
	// the tie goes to the first choice, Nie, right on 2 of 4 documents.
	if !strings.Contains(out, "polish_dyk_multiple_choice: acc 0.5000 ± 0.2887, acc_norm 0.5000 ± 0.2887, f1 0.0000 ± 0.0000 (4 documents)") {
		t.Errorf("summary:\n%s", out)
	}
	res, err := eval.ReadResult(dir)
	if err != nil {
		t.Fatal(err)
	}
	if h := res.Tasks[0].Harness; h == nil || h.Task != "polish_dyk_multiple_choice" || len(h.Metrics) != 3 {
		t.Errorf("results.json: %+v", res.Tasks[0].Harness)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !strings.Contains(string(md), "| acc | 0.5000 | 0.2887 | mean |") || !strings.Contains(string(md), "| f1 | 0.0000 | 0.0000 | bootstrap |") {
		t.Errorf("report.md lacks the metrics with their standard errors:\n%s", md)
	}
	// A generative task over /v1/completions: psc_regex's targets are C, B, C
	// (label 1, 0, 1); the fake answers C only for the budget summary.
	dir2 := t.TempDir()
	code, out, errOut = runCLI(t, "eval", "--quiet", "--task", "polish_psc_regex="+filepath.Join("..", "..", "eval", "testdata", "harness", "psc-test.tsv"), "--endpoint", srv.URL+"/v1", "--model-name", "fake", "--out", dir2)
	if code != 0 || !strings.Contains(out, "polish_psc_regex: exact_match 0.6667 ± 0.3333, f1 0.6667 ± ") {
		t.Errorf("generative harness task: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "eval", "--task", "polish_dyk_multiple_choice="+filepath.Join("..", "..", "eval", "testdata", "harness", "ppc-test.jsonl"), "--endpoint", srv.URL+"/v1", "--model-name", "fake", "--out", dir)
	if code == 0 || !strings.Contains(errOut, `ppc-test.jsonl: line 1 has no field "question"`) {
		t.Errorf("wrong file: exit %d: %s", code, errOut)
	}
}
