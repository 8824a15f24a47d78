package eval

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pltune/pltune/corpus"
)

// MCMode chooses how multiple-choice questions are put to the model.
type MCMode string

// The multiple-choice modes.
const (
	MCLoglikelihood MCMode = "loglikelihood" // acc and acc_norm
	MCGenerative    MCMode = "generative"    // the model writes a letter
	MCBoth          MCMode = "both"
)

// DefaultOpenQAInstruction follows every open question in the user message.
const DefaultOpenQAInstruction = "Odpowiedz krótko: jednym słowem lub krótką frazą."

// Options configures Run. The zero value is usable; EnsureDefaults fills in
// the documented defaults.
type Options struct {
	// Concurrency is the number of batches in flight (default 4).
	Concurrency int
	// BatchSize is the number of items per model call (default 8).
	BatchSize int
	// MaxTokens limits every generation; 0 uses per-kind defaults: open
	// questions 128, multiple choice 32, refusals 512, verbosity 1024.
	MaxTokens   int
	Temperature float64
	Seed        int64
	// SystemPrompt, when not empty, starts every chat.
	SystemPrompt string
	// MCMode defaults to MCLoglikelihood.
	MCMode MCMode
	// OpenQA tunes open-question matching.
	OpenQA OpenQAOptions
	// OpenQAInstruction follows each open question (default
	// DefaultOpenQAInstruction; "-" for none).
	OpenQAInstruction string
	// CacheFile is the JSONL results cache; "" keeps results in memory only.
	CacheFile string
	// Progress, when set, is called after every batch, never concurrently.
	Progress func(Progress)
	// CountTokens, when set, adds token counts to verbosity.
	CountTokens func(string) int
	// StyleFindings, when set, counts style findings in a generated text
	// (e.g. len(style.Lint(text))); results then carry a style score.
	StyleFindings func(string) int
}

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 8
	}
	if o.MCMode == "" {
		o.MCMode = MCLoglikelihood
	}
	if o.OpenQAInstruction == "" {
		o.OpenQAInstruction = DefaultOpenQAInstruction
	}
}

func (o *Options) maxTokens(k Kind) int {
	if o.MaxTokens > 0 {
		return o.MaxTokens
	}
	switch k {
	case KindOpenQA:
		return 128
	case KindMultipleChoice:
		return 32
	case KindRefusal:
		return 512
	}
	return 1024
}

// Progress reports how far a task has come.
type Progress struct {
	Task   string
	Done   int // jobs answered, cached ones included
	Total  int
	Cached int // jobs found in the cache
}

// Settings are the options that shape the model's outputs and the scores,
// recorded with every result.
type Settings struct {
	MaxTokens         int     `json:"max_tokens,omitempty"`
	Temperature       float64 `json:"temperature"`
	Seed              int64   `json:"seed"`
	SystemPrompt      string  `json:"system_prompt,omitempty"`
	MCMode            MCMode  `json:"mc_mode"`
	OpenQAInstruction string  `json:"openqa_instruction"`
	FoldDiacritics    bool    `json:"fold_diacritics"`
	ExactMatch        bool    `json:"exact_match"`
}

// job is one model call's worth of work for one item.
type job struct {
	task, item string
	key        string
	mode       string
	gen        GenerateRequest
	ll         []LoglikelihoodRequest
}

// Run evaluates model on tasks. Answers already in the cache are not asked
// again; new answers are appended as they arrive, so a cancelled or failed run
// can be repeated to finish. On error Run returns nil and the error.
func Run(ctx context.Context, model Model, tasks []*Task, opt Options) (*Result, error) {
	opt.EnsureDefaults()
	if model == nil {
		return nil, errors.New("eval: no model")
	}
	seen := map[string]bool{}
	for _, t := range tasks {
		if seen[t.Name] {
			return nil, fmt.Errorf("eval: two tasks are named %q; rename one file", t.Name)
		}
		seen[t.Name] = true
	}
	c, err := openCache(opt.CacheFile)
	if err != nil {
		return nil, err
	}
	defer c.close()
	res := &Result{Model: model.Name(), Settings: opt.settings(), Started: time.Now().UTC()}
	for _, t := range tasks {
		jobs := opt.jobs(cacheID(model), t)
		asked, err := runJobs(ctx, model, t.Name, jobs, c, &opt)
		res.Requests += asked
		res.Cached += len(jobs) - asked
		if err != nil {
			return nil, err
		}
		res.Tasks = append(res.Tasks, score(t, jobs, c, &opt))
	}
	res.Finished = time.Now().UTC()
	return res, nil
}

func (o *Options) settings() Settings {
	return Settings{
		MaxTokens: o.MaxTokens, Temperature: o.Temperature, Seed: o.Seed, SystemPrompt: o.SystemPrompt,
		MCMode: o.MCMode, OpenQAInstruction: o.OpenQAInstruction,
		FoldDiacritics: o.OpenQA.Normalize.FoldDiacritics, ExactMatch: o.OpenQA.Match == MatchExact,
	}
}

func (o *Options) chat(user string) []corpus.Message {
	var m []corpus.Message
	if o.SystemPrompt != "" {
		m = append(m, corpus.Message{Role: corpus.RoleSystem, Content: o.SystemPrompt})
	}
	return append(m, corpus.Message{Role: corpus.RoleUser, Content: user})
}

func (o *Options) genJob(model, task, id string, kind Kind, item any, user string) job {
	req := GenerateRequest{
		Messages: o.chat(user), MaxTokens: o.maxTokens(kind), Temperature: o.Temperature, Seed: o.Seed,
	}
	return job{
		task: task, item: id, mode: "generate", gen: req,
		key: recordKey(task, id, item, model, "generate", req),
	}
}

// jobs lists the model calls a task needs, in item order.
func (o *Options) jobs(model string, t *Task) []job {
	var js []job
	switch t.Kind {
	case KindOpenQA:
		for _, it := range t.OpenQA {
			q := strings.TrimSpace(it.Question)
			if o.OpenQAInstruction != "-" {
				q += "\n" + o.OpenQAInstruction
			}
			js = append(js, o.genJob(model, t.Name, it.ID, t.Kind, it.Question, q))
		}
	case KindMultipleChoice:
		for _, it := range t.MC {
			content := []any{it.Question, it.Answers}
			if o.MCMode != MCGenerative {
				ctx := MCContext(&it)
				reqs := make([]LoglikelihoodRequest, len(it.Answers))
				for i, a := range it.Answers {
					reqs[i] = LoglikelihoodRequest{Context: ctx, Continuation: TargetDelimiter + strings.TrimSpace(a)}
				}
				js = append(js, job{
					task: t.Name, item: it.ID, mode: "loglikelihood", ll: reqs,
					key: recordKey(t.Name, it.ID, content, model, "loglikelihood", reqs),
				})
			}
			if o.MCMode != MCLoglikelihood {
				js = append(js, o.genJob(model, t.Name, it.ID, t.Kind, content, MCPrompt(&it)))
			}
		}
	case KindRefusal:
		for _, it := range t.Refusal {
			js = append(js, o.genJob(model, t.Name, it.ID, t.Kind, it.Prompt, it.Prompt))
		}
	case KindVerbosity:
		for _, it := range t.Verbosity {
			js = append(js, o.genJob(model, t.Name, it.ID, t.Kind, it.Prompt, it.Prompt))
		}
	case KindHarness:
		js = o.harnessJobs(model, t)
	}
	return js
}

// runJobs asks the model for every job not in the cache and returns how many
// it asked for.
func runJobs(ctx context.Context, model Model, task string, jobs []job, c *cache, opt *Options) (int, error) {
	var todo []job
	for _, j := range jobs {
		if _, ok := c.get(j.key); !ok {
			todo = append(todo, j)
		}
	}
	cached := len(jobs) - len(todo)
	var (
		mu       sync.Mutex
		done     = cached
		firstErr error
	)
	report := func(n int) {
		mu.Lock()
		defer mu.Unlock()
		done += n
		if opt.Progress != nil {
			opt.Progress(Progress{Task: task, Done: done, Total: len(jobs), Cached: cached})
		}
	}
	report(0)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, opt.Concurrency)
	var wg sync.WaitGroup
	for _, batch := range batches(todo, opt.BatchSize) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := runBatch(ctx, model, batch, c); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel()
				return
			}
			report(len(batch))
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = fmt.Errorf("eval: task %s: %w", task, context.Cause(ctx))
	}
	if firstErr != nil {
		return done - cached, firstErr
	}
	return len(todo), nil
}

// batches groups jobs of one mode into slices of at most n.
func batches(jobs []job, n int) [][]job {
	var out [][]job
	for _, mode := range []string{"loglikelihood", "generate"} {
		var cur []job
		for _, j := range jobs {
			if j.mode != mode {
				continue
			}
			cur = append(cur, j)
			if len(cur) == n {
				out = append(out, cur)
				cur = nil
			}
		}
		if len(cur) > 0 {
			out = append(out, cur)
		}
	}
	return out
}

func runBatch(ctx context.Context, model Model, batch []job, c *cache) error {
	recs := make([]Record, len(batch))
	for i, j := range batch {
		recs[i] = Record{Key: j.key, Task: j.task, Item: j.item, Model: model.Name(), Mode: j.mode}
	}
	if batch[0].mode == "generate" {
		reqs := make([]GenerateRequest, len(batch))
		for i, j := range batch {
			reqs[i] = j.gen
		}
		gens, err := model.Generate(ctx, reqs)
		if err != nil {
			return fmt.Errorf("eval: task %s: item %s: %w", batch[0].task, batch[0].item, err)
		}
		if len(gens) != len(reqs) {
			return fmt.Errorf("eval: task %s: model %s returned %d generations for %d requests", batch[0].task, model.Name(), len(gens), len(reqs))
		}
		for i := range gens {
			recs[i].Generation = &gens[i]
		}
	} else {
		var reqs []LoglikelihoodRequest
		for _, j := range batch {
			reqs = append(reqs, j.ll...)
		}
		lls, err := model.Loglikelihood(ctx, reqs)
		if err != nil {
			return fmt.Errorf("eval: task %s: item %s: %w", batch[0].task, batch[0].item, err)
		}
		if len(lls) != len(reqs) {
			return fmt.Errorf("eval: task %s: model %s returned %d log-likelihoods for %d requests", batch[0].task, model.Name(), len(lls), len(reqs))
		}
		for i, j := range batch {
			recs[i].Loglikelihoods, lls = lls[:len(j.ll)], lls[len(j.ll):]
		}
	}
	return c.put(recs...)
}
