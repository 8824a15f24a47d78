// Command eval-endpoint evaluates a model served behind an OpenAI-compatible
// API (vLLM, llama.cpp's server, TGI, OpenAI itself) on pltune's embedded
// Polish evaluation samples, and writes a Markdown report with charts.
//
//	vllm serve speakleash/Bielik-11B-v2.3-Instruct --port 8000 &
//	go run ./examples/programs/eval-endpoint --url http://localhost:8000/v1 \
//	    --model speakleash/Bielik-11B-v2.3-Instruct --out out/bielik
//
// Multiple choice is scored by log-likelihood through /v1/completions with
// echo, as lm-evaluation-harness does; servers without prompt log-probs
// need --mc-mode generative. Answers are cached in --out, so an interrupted
// run picks up where it stopped.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/eval/openai"
	"github.com/pltune/pltune/eval/report"
	"github.com/pltune/pltune/eval/samples"
	"github.com/pltune/pltune/eval/style"
)

const usage = `eval-endpoint --url URL --model NAME [--out DIR] [flags]

Evaluates an OpenAI-compatible endpoint on pltune's embedded Polish samples
(PLCC-style open questions, exam-style multiple choice, false refusals,
verbosity) and writes results.json, report.md and charts to --out.

Flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eval-endpoint", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	url := fs.String("url", "", "API root, e.g. http://localhost:8000/v1 (required)")
	model := fs.String("model", "", "served model name (required)")
	keyEnv := fs.String("api-key-env", "OPENAI_API_KEY", "environment variable holding the API key (none needed for local servers)")
	out := fs.String("out", "out/eval-endpoint", "output folder: results.json, report.md, charts/, cache.jsonl")
	tasks := fs.String("tasks", strings.Join(samples.Names(), ","), "comma-separated tasks to run")
	mcMode := fs.String("mc-mode", string(eval.MCLoglikelihood), "multiple choice by loglikelihood, generative or both")
	maxTokens := fs.Int("max-tokens", 0, "limit every generation (0: per-task defaults)")
	concurrency := fs.Int("concurrency", 8, "requests in flight")
	system := fs.String("system", "", "system prompt for every chat")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "eval-endpoint: %v (see --help)\n", err)
		return 2
	}
	mode := eval.MCMode(*mcMode)
	switch {
	case *url == "" || *model == "":
		fmt.Fprintln(stderr, "eval-endpoint: --url and --model are required (see --help)")
		return 2
	case !slices.Contains([]eval.MCMode{eval.MCLoglikelihood, eval.MCGenerative, eval.MCBoth}, mode):
		fmt.Fprintf(stderr, "eval-endpoint: --mc-mode %q: want loglikelihood, generative or both\n", *mcMode)
		return 2
	case *concurrency < 1 || *maxTokens < 0:
		fmt.Fprintln(stderr, "eval-endpoint: --concurrency must be positive and --max-tokens not negative")
		return 2
	}
	ts, err := readTasks(strings.Split(*tasks, ","))
	if err != nil {
		fmt.Fprintf(stderr, "eval-endpoint: %v\n", err)
		return 2
	}
	client, err := openai.New(openai.Config{BaseURL: *url, Model: *model, APIKeyEnv: *keyEnv, Concurrency: *concurrency})
	if err != nil {
		fmt.Fprintf(stderr, "eval-endpoint: %v\n", err)
		return 1
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintf(stderr, "eval-endpoint: %v\n", err)
		return 1
	}
	res, err := eval.Run(ctx, client, ts, eval.Options{
		Concurrency:   *concurrency,
		MaxTokens:     *maxTokens,
		MCMode:        mode,
		SystemPrompt:  *system,
		CacheFile:     filepath.Join(*out, "cache.jsonl"),
		StyleFindings: func(s string) int { return len(style.Lint(s)) },
		Progress: func(p eval.Progress) {
			if p.Done == p.Total {
				fmt.Fprintf(stderr, "%-10s %d items (%d cached)\n", p.Task, p.Total, p.Cached)
			}
		},
	})
	if err != nil {
		fmt.Fprintf(stderr, "eval-endpoint: %v\n", err)
		if mode != eval.MCGenerative && strings.Contains(err.Error(), "echo") {
			fmt.Fprintln(stderr, "eval-endpoint: the server may not return prompt log-probs; try --mc-mode generative")
		}
		return 1
	}
	if _, err := report.WriteRun(*out, res); err != nil {
		fmt.Fprintf(stderr, "eval-endpoint: %v\n", err)
		return 1
	}
	for _, m := range res.Metrics() {
		if !strings.Contains(m.Key, "/") {
			fmt.Fprintf(stdout, "%-10s %-24s %.4f\n", m.Task, m.Key, m.Value)
		}
	}
	fmt.Fprintf(stdout, "report: %s\n", filepath.Join(*out, report.ReportFile))
	return 0
}

func readTasks(names []string) ([]*eval.Task, error) {
	for i, n := range names {
		names[i] = strings.TrimSpace(n)
		if !slices.Contains(samples.Names(), names[i]) {
			return nil, fmt.Errorf("--tasks: unknown task %q; want some of %s", names[i], strings.Join(samples.Names(), ", "))
		}
	}
	return samples.Tasks(names...)
}
