package openai

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/pltune/pltune/eval"
)

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type genBody struct {
	Model       string        `json:"model"`
	Messages    []chatMessage `json:"messages,omitempty"`
	Prompt      any           `json:"prompt,omitempty"`
	MaxTokens   *int          `json:"max_tokens,omitempty"`
	Temperature float64       `json:"temperature"`
	Seed        *int64        `json:"seed,omitempty"`
	Stop        []string      `json:"stop,omitempty"`
	Echo        bool          `json:"echo,omitempty"`
	Logprobs    *int          `json:"logprobs,omitempty"`
}

type logprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []*float64           `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

type choice struct {
	Index   int `json:"index"`
	Message *struct {
		Content string `json:"content"`
	} `json:"message"`
	Text         string    `json:"text"`
	FinishReason string    `json:"finish_reason"`
	Logprobs     *logprobs `json:"logprobs"`
}

type response struct {
	Choices []choice `json:"choices"`
	Usage   *struct {
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// Generate sends each request to /chat/completions (or /completions when it
// has no messages), concurrently within the client's bound.
func (c *Client) Generate(ctx context.Context, reqs []eval.GenerateRequest) ([]eval.Generation, error) {
	out := make([]eval.Generation, len(reqs))
	err := c.each(ctx, len(reqs), func(ctx context.Context, i int) error {
		g, err := c.generate(ctx, &reqs[i])
		out[i] = g
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// each runs f for 0..n-1 in parallel (the semaphore in post bounds it) and
// returns the first error, cancelling the rest.
func (c *Client) each(ctx context.Context, n int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := range n {
		wg.Go(func() {
			if err := f(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	return first
}

func (c *Client) generate(ctx context.Context, r *eval.GenerateRequest) (eval.Generation, error) {
	body := genBody{Model: c.cfg.Model, Temperature: r.Temperature, Stop: r.Stop}
	if r.MaxTokens > 0 {
		body.MaxTokens = &r.MaxTokens
	}
	if r.Seed != 0 {
		body.Seed = &r.Seed
	}
	path := "/chat/completions"
	if len(r.Messages) == 0 {
		path = "/completions"
		body.Prompt = r.Prompt
	} else {
		for _, m := range r.Messages {
			body.Messages = append(body.Messages, chatMessage{Role: string(m.Role), Content: m.Content})
		}
	}
	var resp response
	if err := c.post(ctx, path, body, &resp); err != nil {
		return eval.Generation{}, err
	}
	if len(resp.Choices) == 0 {
		return eval.Generation{}, fmt.Errorf("openai: POST %s%s: answer has no choices", c.base, path)
	}
	ch := resp.Choices[0]
	g := eval.Generation{Text: ch.Text, FinishReason: ch.FinishReason}
	if ch.Message != nil {
		g.Text = ch.Message.Content
	}
	if resp.Usage != nil {
		g.Tokens = resp.Usage.CompletionTokens
	}
	return g, nil
}

// ErrNoPromptLogprobs means the server does not return log-probabilities of
// the prompt (echo); llama.cpp's server and ollama do not. Use generative
// multiple choice with such servers.
var ErrNoPromptLogprobs = errors.New("server returned no prompt log-probabilities (echo with logprobs is unsupported); use the generative multiple-choice mode")

// Loglikelihood scores each context+continuation with /completions calls of
// BatchSize prompts (echo, logprobs 1, max_tokens 1 or 0, temperature 0) and
// sums the log-probabilities of the tokens that cover the continuation. Each
// distinct context is sent on its own too: when its tokens are a prefix of
// the full prompt's, the continuation is exactly the tokens after them, as
// lm-evaluation-harness counts it. Otherwise (the tokenizer merged across the
// boundary, or the server returned no tokens) the continuation is found by
// text_offset: the tokens at or after the context's end in characters, plus
// one that straddles it. As in the harness, the one generated token
// (max_tokens 1) is dropped.
func (c *Client) Loglikelihood(ctx context.Context, reqs []eval.LoglikelihoodRequest) ([]eval.LoglikelihoodResult, error) {
	var prompts []string
	ctxIndex := map[string]int{}
	for _, r := range reqs {
		if _, ok := ctxIndex[r.Context]; !ok && r.Context != "" {
			ctxIndex[r.Context] = len(prompts)
			prompts = append(prompts, r.Context)
		}
	}
	first := len(prompts)
	for _, r := range reqs {
		prompts = append(prompts, r.Context+r.Continuation)
	}
	generated := 1
	if c.cfg.EchoMaxTokensZero {
		generated = 0
	}
	lps := make([]*logprobs, len(prompts))
	size := c.cfg.BatchSize
	nb := (len(prompts) + size - 1) / size
	err := c.each(ctx, nb, func(ctx context.Context, b int) error {
		lo, hi := b*size, min((b+1)*size, len(prompts))
		return c.promptLogprobs(ctx, prompts[lo:hi], generated, lps[lo:hi])
	})
	if err != nil {
		return nil, err
	}
	out := make([]eval.LoglikelihoodResult, len(reqs))
	for i, r := range reqs {
		var ctxTokens []string
		if k, ok := ctxIndex[r.Context]; ok {
			ctxTokens = lps[k].Tokens[:max(len(lps[k].Tokens)-generated, 0)]
		}
		res, err := continuationLogprob(lps[first+i], ctxTokens, utf8.RuneCountInString(r.Context), utf8.RuneCountInString(prompts[first+i]), generated)
		if err != nil {
			return nil, fmt.Errorf("openai: POST %s/completions: request %d: %w", c.base, i, err)
		}
		out[i] = res
	}
	return out, nil
}

// promptLogprobs asks for the prompt log-probabilities of prompts.
func (c *Client) promptLogprobs(ctx context.Context, prompts []string, generated int, out []*logprobs) error {
	one := 1
	body := genBody{Model: c.cfg.Model, Prompt: prompts, MaxTokens: &generated, Echo: true, Logprobs: &one}
	var resp response
	if err := c.post(ctx, "/completions", body, &resp); err != nil {
		return err
	}
	where := c.base + "/completions"
	for _, ch := range resp.Choices {
		if ch.Logprobs == nil || len(ch.Logprobs.TokenLogprobs) == 0 {
			return fmt.Errorf("openai: POST %s: %w", where, ErrNoPromptLogprobs)
		}
	}
	if len(resp.Choices) != len(prompts) {
		return fmt.Errorf("openai: POST %s: %d choices for %d prompts", where, len(resp.Choices), len(prompts))
	}
	chs := slices.Clone(resp.Choices)
	slices.SortStableFunc(chs, func(a, b choice) int { return a.Index - b.Index })
	for i, ch := range chs {
		if ch.Index != i {
			return fmt.Errorf("openai: POST %s: choice indexes are not 0..%d", where, len(prompts)-1)
		}
		lp := ch.Logprobs
		if len(lp.TextOffset) != len(lp.TokenLogprobs) {
			return fmt.Errorf("openai: POST %s: choice %d: %d text offsets for %d token log-probabilities", where, i, len(lp.TextOffset), len(lp.TokenLogprobs))
		}
		// Without echo support a server returns the generated token alone,
		// at an offset past the prompt (llama.cpp's server does so silently,
		// and every continuation would score 0).
		if len(lp.TokenLogprobs) <= generated || lp.TextOffset[0] != 0 {
			return fmt.Errorf("openai: POST %s: %w", where, ErrNoPromptLogprobs)
		}
		out[i] = lp
	}
	return nil
}

// continuationLogprob sums the continuation's token log-probabilities in
// lp, the full prompt's. ctxTokens are the context's own tokens (nil when
// unknown or the context is empty); ctxLen and promptLen are the context's
// and the prompt's lengths in characters, the unit of text_offset.
func continuationLogprob(lp *logprobs, ctxTokens []string, ctxLen, promptLen, generated int) (eval.LoglikelihoodResult, error) {
	end := len(lp.TokenLogprobs) - generated
	if end <= 0 {
		return eval.LoglikelihoodResult{}, ErrNoPromptLogprobs
	}
	start := end
	switch {
	case ctxLen == 0:
		start = 0
	case len(ctxTokens) > 0 && len(ctxTokens) < end && len(lp.Tokens) >= end && slices.Equal(lp.Tokens[:len(ctxTokens)], ctxTokens):
		start = len(ctxTokens)
	default:
		for i := 0; i < end && i < len(lp.TextOffset); i++ {
			// The token starting at or after the boundary, or one that
			// straddles it.
			next := promptLen
			if i+1 < len(lp.TextOffset) {
				next = lp.TextOffset[i+1]
			}
			if lp.TextOffset[i] >= ctxLen || next > ctxLen {
				start = i
				break
			}
		}
	}
	if start == end {
		return eval.LoglikelihoodResult{}, errors.New("no prompt token covers the continuation")
	}
	res := eval.LoglikelihoodResult{Greedy: len(lp.TopLogprobs) >= end}
	for i := start; i < end; i++ {
		p := lp.TokenLogprobs[i]
		if p == nil {
			// Only the very first token has no log-probability; with an empty
			// context it carries no information about the continuation.
			continue
		}
		res.LogProb += *p
		if res.Greedy {
			for _, v := range lp.TopLogprobs[i] {
				if v > *p+1e-6 {
					res.Greedy = false
				}
			}
		}
	}
	return res, nil
}
