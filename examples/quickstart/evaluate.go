package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pltune/pltune/eval"
	"github.com/pltune/pltune/eval/local"
	"github.com/pltune/pltune/eval/samples"
	"github.com/pltune/pltune/eval/style"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

// evalTasks reads the embedded evaluation sets and keeps an evenly spread
// subset of each (0: all), so that every category stays represented while
// generation, the slow part on a CPU, stays short.
func evalTasks(z sizes) ([]*eval.Task, error) {
	tasks, err := samples.Tasks("mc", "plcc", "refusal", "verbosity")
	if err != nil {
		return nil, err
	}
	for i, keep := range []int{z.evalMC, z.evalOpenQA, z.evalRefusal, z.evalVerbosity} {
		t := tasks[i]
		t.MC = spread(t.MC, keep)
		t.OpenQA = spread(t.OpenQA, keep)
		t.Refusal = spread(t.Refusal, keep)
		t.Verbosity = spread(t.Verbosity, keep)
	}
	return tasks, nil
}

// spread keeps n items at even strides (all when n is 0 or too large).
func spread[T any](xs []T, n int) []T {
	if n <= 0 || n >= len(xs) {
		return xs
	}
	out := make([]T, n)
	for i := range out {
		out[i] = xs[i*len(xs)/n]
	}
	return out
}

// evaluate runs the tasks on the in-process model: multiple choice by
// log-likelihood, the rest by greedy generation of at most z.maxTokens
// tokens, with style findings counted in every generated answer.
func evaluate(ctx context.Context, log io.Writer, m *train.Model, tok *tokenize.Tokenizer, name string, tasks []*eval.Task, z sizes) (*eval.Result, error) {
	lm, err := local.New(m, tok, name)
	if err != nil {
		return nil, err
	}
	lm.BatchSize = 8
	t0 := time.Now()
	opt := eval.Options{
		Concurrency:   1,
		BatchSize:     8,
		MaxTokens:     z.maxTokens,
		MCMode:        eval.MCLoglikelihood,
		CountTokens:   tok.CountTokens,
		StyleFindings: func(s string) int { return len(style.Lint(s)) },
		Progress: func(p eval.Progress) {
			if p.Done == p.Total {
				fmt.Fprintf(log, "      %-9s %3d items  %5.1fs\n", p.Task, p.Total, time.Since(t0).Seconds())
			}
		},
	}
	return eval.Run(ctx, lm, tasks, opt)
}
