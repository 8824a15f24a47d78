package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/eval/openai"
	"github.com/pltune/pltune/eval/report"
	"github.com/pltune/pltune/eval/samples"
	"github.com/pltune/pltune/eval/style"
	"github.com/pltune/pltune/tokenize"
)

func init() {
	register(&command{name: "eval", summary: "evaluate a model: PLCC-style QA, multiple choice, false refusals, verbosity, style", run: runEval})
	register(&command{name: "eval compare", summary: "compare two evaluation runs side by side (tables and charts)", run: runEvalCompare})
}

// openLocalModel opens a checkpoint folder as an in-process model. The
// libtorch build sets it; without it, --model is a usage error.
var openLocalModel func(f modelFlags, noBOS bool) (eval.Model, error)

// forwardEval, when set, runs an eval with an in-process model in the
// pltune-torch binary (dispatch.go).
var forwardEval func(ctx context.Context, env *cliEnv, args []string) error

const evalUsage = `eval --task FILE... (--model DIR | --endpoint URL --model-name NAME) --out DIR

Evaluates a model on task files (JSONL; the kind is detected from the fields,
or forced with --task KIND=FILE where KIND is openqa, mc, refusal or
verbosity; llmzszl=llmzszl-test.jsonl and plcc=FILE name the benchmarks).
--task TASK=FILE runs an lm-evaluation-harness task of the Open PL LLM
Leaderboard on the dataset's own file (JSONL, JSON, CSV or TSV), e.g.
--task polemo2_in_multiple_choice=test.jsonl; --list-tasks names them. --task samples adds pltune's four embedded sample sets,
--task samples:plcc one of them (plcc, mc, refusal, verbosity). Task files
may also follow the flags as arguments.

With --model the model runs in process (--device cuda for a GPU); --model
may be a PEFT LoRA adapter folder, loaded on its base (--base, else its
adapter_config.json's base_model_name_or_path).

Writes to --out: results.json, report.md, charts/*.png, and cache.jsonl, the
model's raw answers, keyed by the model's fingerprint (its weights' files,
config and adapter) and the request: running the same command again resumes
an interrupted run without asking for answered items, and a model retrained
into the same folder is asked again. The HTTP backend reads its API key
from $OPENAI_API_KEY (or the variable --api-key-env names).`

type taskList []string

func (t *taskList) String() string     { return strings.Join(*t, ",") }
func (t *taskList) Set(v string) error { *t = append(*t, v); return nil }

func runEval(ctx context.Context, env *cliEnv, args []string) error {
	fset := newFlags(env, "eval", evalUsage)
	var tasks taskList
	fset.Var(&tasks, "task", "task file, KIND=FILE, samples or samples:NAME (repeatable)")
	var mf modelFlags
	mf.register(fset, "model folder or PEFT adapter folder for the in-process backend", "tokenizer for --model (default: the --model folder's, else its base's)")
	modelDir := &mf.model
	endpoint := fset.String("endpoint", "", "base URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1")
	modelName := fset.String("model-name", "", "model name the server serves (with --endpoint)")
	apiKeyEnv := fset.String("api-key-env", "OPENAI_API_KEY", "environment variable holding the API key")
	out := fset.String("out", "", "output folder (required)")
	concurrency := fset.Int("concurrency", 4, "model calls in flight")
	batch := fset.Int("batch", 8, "items per model call")
	maxTokens := fset.Int("max-tokens", 0, "generation limit; 0: per task kind (openqa 128, mc 32, refusal 512, verbosity 1024)")
	temperature := fset.Float64("temperature", 0, "sampling temperature; 0 is greedy")
	seed := fset.Int64("seed", 0, "sampling seed")
	system := fset.String("system", "", "system prompt for every chat")
	mcMode := fset.String("mc-mode", "loglikelihood", "multiple choice by loglikelihood (acc, acc_norm), generative (the letter) or both")
	fold := fset.Bool("fold-diacritics", false, "open questions: compare with Polish diacritics folded (ł→l, ą→a …)")
	exact := fset.Bool("exact", false, "open questions: the whole answer must match, not just contain an accepted answer")
	timeout := fset.Duration("timeout", 2*time.Minute, "HTTP: limit per request attempt")
	retries := fset.Int("retries", 5, "HTTP: retries on 429, 5xx and timeouts (0 for none)")
	countTokens := fset.String("count-tokens", "", "tokenizer (a folder with tokenizer.json, or the file) to count verbosity in tokens")
	noStyle := fset.Bool("no-style", false, "skip the Polish style score")
	quiet := fset.Bool("quiet", false, "no progress on stderr")
	noBOS := fset.Bool("no-bos", false, "--model: encode log-likelihood requests and raw prompts without BOS, as speakleash's lm-evaluation-harness fork (the Open PL LLM Leaderboard) does")
	numFewshot := fset.Int("num-fewshot", 0, "harness tasks: few-shot examples before each question (0: zero-shot)")
	var fewshot taskList
	fset.Var(&fewshot, "fewshot", "harness tasks: TASK=FILE, the training split few-shot examples are drawn from (as the harness draws them, seed 1234; repeatable)")
	listTasks := fset.Bool("list-tasks", false, "list the lm-evaluation-harness tasks --task TASK=FILE knows and exit")
	rest, err := parseInterleaved(fset, args)
	if err != nil {
		return err
	}
	tasks = append(tasks, rest...)
	if *listTasks {
		for _, n := range eval.HarnessTaskNames() {
			spec, _ := eval.HarnessTaskByName(n)
			fmt.Fprintf(env.stdout, "%-40s %-16s %s (fields %s)\n", n, spec.Output, spec.Dataset, strings.Join(spec.Required, ", "))
		}
		return nil
	}
	switch {
	case len(tasks) == 0:
		return usagef("no tasks; give --task FILE (or --task samples)")
	case *out == "":
		return usagef("missing --out DIR")
	case (*modelDir == "") == (*endpoint == ""):
		return usagef("give either --model DIR or --endpoint URL with --model-name NAME")
	case *noBOS && *modelDir == "":
		return usagef("--no-bos is for the in-process backend (--model); a server encodes prompts itself")
	case *endpoint != "" && *modelName == "":
		return usagef("--endpoint needs --model-name (the name the server serves; see its /v1/models)")
	}
	mode := eval.MCMode(*mcMode)
	if mode != eval.MCLoglikelihood && mode != eval.MCGenerative && mode != eval.MCBoth {
		return usagef("--mc-mode %q: want loglikelihood, generative or both", *mcMode)
	}
	hopt := eval.HarnessOptions{NumFewshot: *numFewshot}
	fewshotFiles := map[string]string{}
	for _, f := range fewshot {
		name, path, ok := strings.Cut(f, "=")
		if !ok {
			return usagef("--fewshot %s: want TASK=FILE", f)
		}
		fewshotFiles[name] = path
	}
	loaded, err := loadTasks(tasks, hopt, fewshotFiles)
	if err != nil {
		return err
	}
	var model eval.Model
	if *modelDir != "" {
		if openLocalModel == nil && forwardEval != nil {
			return forwardEval(ctx, env, args)
		}
		if openLocalModel == nil {
			return usagef("--model: the in-process backend is not built into this pltune (it needs libtorch); serve the model with an OpenAI-compatible server and use --endpoint")
		}
		if model, err = openLocalModel(mf, *noBOS); err != nil {
			return err
		}
	} else {
		r := *retries
		if r == 0 {
			r = -1
		}
		c, err := openai.New(openai.Config{
			BaseURL: *endpoint, Model: *modelName, APIKeyEnv: *apiKeyEnv,
			Timeout: *timeout, MaxRetries: r, Concurrency: *concurrency, BatchSize: *batch,
		})
		if err != nil {
			return usagef("%v", err)
		}
		model = c
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	cacheFile := filepath.Join(*out, "cache.jsonl")
	opt := eval.Options{
		Concurrency: *concurrency, BatchSize: *batch, MaxTokens: *maxTokens,
		Temperature: *temperature, Seed: *seed, SystemPrompt: *system, MCMode: mode,
		OpenQA:    eval.OpenQAOptions{Normalize: eval.NormalizeOptions{FoldDiacritics: *fold}},
		CacheFile: cacheFile,
	}
	if *exact {
		opt.OpenQA.Match = eval.MatchExact
	}
	if *countTokens != "" {
		tok, err := tokenize.Load(*countTokens)
		if err != nil {
			return err
		}
		opt.CountTokens = tok.CountTokens
	}
	if !*noStyle {
		opt.StyleFindings = func(s string) int { return len(style.Lint(s)) }
	}
	if !*quiet {
		opt.Progress = progressPrinter(env)
	}
	res, err := eval.Run(ctx, model, loaded, opt)
	if err != nil {
		hint := ""
		if errors.Is(err, openai.ErrNoPromptLogprobs) {
			hint = " with --mc-mode generative"
		}
		return &exitError{code: 1, msg: fmt.Sprintf("%v\nanswers so far are kept in %s; run the same command again%s to resume", err, cacheFile, hint)}
	}
	paths, err := report.WriteRun(*out, res)
	if err != nil {
		return err
	}
	printSummary(env, res)
	for _, p := range paths {
		fmt.Fprintf(env.stdout, "wrote %s\n", p)
	}
	return nil
}

// progressPrinter prints a line per task at every tenth of the way.
func progressPrinter(env *cliEnv) func(eval.Progress) {
	last := map[string]int{}
	return func(p eval.Progress) {
		step := p.Done * 10 / max(p.Total, 1)
		if prev, ok := last[p.Task]; ok && step == prev {
			return
		}
		last[p.Task] = step
		fmt.Fprintf(env.stderr, "eval: %s: %d/%d answered (%d from the cache)\n", p.Task, p.Done, p.Total, p.Cached)
	}
}

func printSummary(env *cliEnv, res *eval.Result) {
	fmt.Fprintf(env.stdout, "model %s: %d requests, %d answers from the cache\n", res.Model, res.Requests, res.Cached)
	for _, t := range res.Tasks {
		switch {
		case t.OpenQA != nil:
			fmt.Fprintf(env.stdout, "  %s: accuracy %.1f%% (%d/%d)\n", t.Name, 100*t.OpenQA.Rate, t.OpenQA.Correct, t.OpenQA.Total)
		case t.MC != nil:
			var parts []string
			if t.MC.Acc != nil {
				parts = append(parts, fmt.Sprintf("acc %.1f%%, acc_norm %.1f%%", 100*t.MC.Acc.Rate, 100*t.MC.AccNorm.Rate))
			}
			if t.MC.Generative != nil {
				parts = append(parts, fmt.Sprintf("generative %.1f%% (%d unreadable)", 100*t.MC.Generative.Rate, t.MC.Unparsed))
			}
			fmt.Fprintf(env.stdout, "  %s: %s\n", t.Name, strings.Join(parts, ", "))
		case t.Harness != nil:
			var parts []string
			for _, m := range t.Harness.Metrics {
				parts = append(parts, fmt.Sprintf("%s %.4f ± %.4f", m.Name, m.Value, m.Stderr))
			}
			fmt.Fprintf(env.stdout, "  %s: %s (%d documents)\n", t.Name, strings.Join(parts, ", "), t.Harness.Docs)
		case t.Refusal != nil:
			fmt.Fprintf(env.stdout, "  %s: false refusals %.1f%% (%d/%d benign), harmful refused %.1f%% (%d/%d)\n", t.Name,
				100*t.Refusal.FalseRefusalRate, t.Refusal.FalseRefusals, t.Refusal.Benign,
				100*t.Refusal.HarmfulRefusalRate, t.Refusal.HarmfulRefused, t.Refusal.Harmful)
		case t.Verbosity != nil:
			w := t.Verbosity.Words
			fmt.Fprintf(env.stdout, "  %s: %.0f words on average (median %.0f, p90 %.0f), %.2f× the reference\n", t.Name, w.Response.Mean, w.Response.Median, w.Response.P90, w.Ratio)
		}
		if t.Style != nil {
			fmt.Fprintf(env.stdout, "  %s: style %.2f findings per 1,000 words\n", t.Name, t.Style.Per1000Words)
		}
	}
}

// loadTasks reads task arguments: FILE, KIND=FILE, TASK=FILE (a harness
// task), samples, samples:NAME.
func loadTasks(args []string, hopt eval.HarnessOptions, fewshot map[string]string) ([]*eval.Task, error) {
	var out []*eval.Task
	for _, a := range args {
		switch {
		case a == "samples":
			ts, err := samples.Tasks()
			if err != nil {
				return nil, err
			}
			out = append(out, ts...)
			continue
		case strings.HasPrefix(a, "samples:"):
			name := strings.TrimPrefix(a, "samples:")
			t, err := samples.Task(name)
			if errors.Is(err, samples.ErrUnknownSet) {
				return nil, usagef("--task samples:%s: no such sample set; want one of %s", name, strings.Join(samples.Names(), ", "))
			}
			if err != nil {
				return nil, err
			}
			out = append(out, t)
			continue
		}
		if k, p, ok := strings.Cut(a, "="); ok {
			if spec, ok := eval.HarnessTaskByName(k); ok {
				o := hopt
				if f, ok := fewshot[k]; ok && o.NumFewshot > 0 {
					docs, err := eval.ReadDocs(f)
					if err != nil {
						return nil, err
					}
					o.Fewshot = docs
				}
				t, err := eval.ReadHarnessFile(spec, p, o)
				if err != nil {
					return nil, err
				}
				out = append(out, t)
				continue
			}
		}
		var kind eval.Kind
		path := a
		if k, p, ok := strings.Cut(a, "="); ok && !strings.ContainsAny(k, `/\.`) {
			var err error
			if kind, err = eval.ParseKind(k); err != nil {
				return nil, usagef("--task %s: %v", a, err)
			}
			path = p
		}
		t, err := eval.ReadTaskFile(path, kind)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func runEvalCompare(_ context.Context, env *cliEnv, args []string) error {
	fset := newFlags(env, "eval compare", "eval compare RUN_A RUN_B --out DIR\n\nCompares two runs of pltune eval (their folders or results.json files), e.g.\nbefore and after alignment. Writes comparison.md, comparison.json,\ncomparison.png (PLCC, false refusals, verbosity, style) and per-category charts.")
	out := fset.String("out", "", "output folder (required)")
	alpha := fset.Float64("alpha", eval.DefaultAlpha, "significance level of the paired tests behind better/worse")
	rest, err := parseInterleaved(fset, args)
	if err != nil {
		return err
	}
	if *alpha <= 0 || *alpha >= 1 {
		return usagef("--alpha %g: want a level between 0 and 1, e.g. 0.05", *alpha)
	}
	if len(rest) != 2 {
		return usagef("want two runs, RUN_A and RUN_B; got %d", len(rest))
	}
	if *out == "" {
		return usagef("missing --out DIR")
	}
	a, err := eval.ReadResult(rest[0])
	if err != nil {
		return err
	}
	b, err := eval.ReadResult(rest[1])
	if err != nil {
		return err
	}
	c, paths, err := report.WriteComparisonAt(*out, a, b, *alpha)
	if err != nil {
		return err
	}
	for _, r := range c.Rows {
		if r.Delta == nil || strings.Contains(r.Key, "/") {
			continue
		}
		p := ""
		if r.Test != nil {
			p = fmt.Sprintf(" (%s p=%.3g, n=%d)", r.Test.Method, r.Test.P, r.Test.N)
		}
		fmt.Fprintf(env.stdout, "%-12s %-22s %10.4f ± %.4f → %10.4f ± %.4f  %s%s\n", r.Task, r.Key, *r.A, r.StderrA, *r.B, r.StderrB, r.Verdict, p)
	}
	fmt.Fprintf(env.stdout, "better/worse: paired test significant at alpha %g; otherwise no significant change\n", c.Alpha)
	for _, p := range paths {
		fmt.Fprintf(env.stdout, "wrote %s\n", p)
	}
	return nil
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, which it returns.
func parseInterleaved(fset *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fset, args); err != nil {
			return nil, err
		}
		args = fset.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
