// Package openai is an eval.Model backend for servers that speak the OpenAI
// API: vLLM, llama.cpp's server, ollama and OpenAI itself. Generation goes to
// /chat/completions (or /completions for a raw prompt); log-likelihoods come
// from /completions with echo and logprobs, the way lm-evaluation-harness asks
// vLLM for them. llama.cpp's server and ollama return no log-probabilities for
// the prompt; with them, Loglikelihood fails with ErrNoPromptLogprobs rather
// than scoring every choice 0, and multiple choice must run generatively.
//
// Every call has a timeout; 429 and 5xx answers and transport errors are
// retried with exponential backoff and full jitter, honouring Retry-After; the
// number of requests in flight is bounded across all callers.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pltune/pltune/eval"
)

// Config configures a Client. Zero fields take the defaults documented on
// each.
type Config struct {
	// BaseURL is the API root, e.g. "http://localhost:8000/v1". A URL with
	// no path gets "/v1".
	BaseURL string
	// Model is the served model's name, sent with every request.
	Model string
	// APIKey is sent as a bearer token. When empty it is read from the
	// environment variable APIKeyEnv (default OPENAI_API_KEY); no key at all
	// is fine for local servers.
	APIKey    string
	APIKeyEnv string
	// Timeout bounds each attempt (default 2 minutes).
	Timeout time.Duration
	// MaxRetries is the number of retries after a failed attempt (default
	// 5; negative for none).
	MaxRetries int
	// BackoffBase and BackoffMax shape the wait before retry n: a random
	// duration up to min(BackoffMax, BackoffBase·2ⁿ) (defaults 500 ms, 30 s).
	// A Retry-After header replaces it, capped at BackoffMax.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Concurrency bounds the requests in flight (default 8).
	Concurrency int
	// BatchSize is the number of prompts per /completions request when
	// scoring log-likelihoods (default 8).
	BatchSize int
	// EchoMaxTokensZero sends max_tokens 0 with echo instead of 1. vLLM
	// rejects 0 (lm-evaluation-harness sends 1 and drops the generated
	// token); OpenAI's legacy completions took 0.
	EchoMaxTokensZero bool
	// HTTPClient defaults to a client without its own timeout (Timeout
	// applies per attempt).
	HTTPClient *http.Client
}

// Client is an eval.Model served over the OpenAI API.
type Client struct {
	cfg  Config
	base string
	key  string
	sem  chan struct{}

	mu  sync.Mutex
	rnd *rand.Rand
}

var _ eval.Model = (*Client)(nil)

// New checks cfg and returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("openai: no base URL; want e.g. http://localhost:8000/v1")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("openai: base URL %q: want http(s)://host[:port][/path]", cfg.BaseURL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1"
	}
	if cfg.Model == "" {
		return nil, errors.New("openai: no model name; the server needs one (see its /v1/models)")
	}
	if cfg.APIKeyEnv == "" {
		cfg.APIKeyEnv = "OPENAI_API_KEY"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = 5
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 500 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 8
	}
	if cfg.HTTPClient == nil {
		// Keep a connection per request in flight: the default transport
		// keeps 2 idle connections per host and would reconnect for the rest.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Concurrency
		cfg.HTTPClient = &http.Client{Transport: tr}
	}
	key := cfg.APIKey
	if key == "" {
		key = os.Getenv(cfg.APIKeyEnv)
	}
	return &Client{
		cfg: cfg, base: strings.TrimRight(u.String(), "/"), key: key,
		sem: make(chan struct{}, cfg.Concurrency),
		rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}, nil
}

// Name returns the served model's name.
func (c *Client) Name() string { return c.cfg.Model }

// StatusError is a non-2xx answer from the server after all retries.
type StatusError struct {
	URL        string
	StatusCode int
	Body       string // the start of the body, for the message
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("openai: POST %s: %d %s: %s", e.URL, e.StatusCode, http.StatusText(e.StatusCode), e.Body)
}

func retryable(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}

// post sends body as JSON to path and decodes the answer into out, retrying
// what may succeed on a second try.
func (c *Client) post(ctx context.Context, path string, body, out any) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("openai: %w", err)
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.sem }()
	endpoint := c.base + path
	for attempt := 0; ; attempt++ {
		wait, err := c.attempt(ctx, endpoint, payload, out)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return err
		case wait < 0:
			return err
		case attempt >= c.cfg.MaxRetries:
			if attempt == 0 {
				return err
			}
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt+1)
		}
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while waiting to retry after: %v)", ctx.Err(), err)
		}
	}
}

// attempt makes one request. It returns the wait before a retry: -1 for an
// error not worth retrying, 0 for the default backoff, more when the server
// said when to come back.
func (c *Client) attempt(ctx context.Context, endpoint string, payload []byte, out any) (time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, endpoint, bytes.NewReader(payload))
	if err != nil {
		return -1, fmt.Errorf("openai: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("openai: POST %s: no answer within %v", endpoint, c.cfg.Timeout)
		}
		return 0, fmt.Errorf("openai: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		return 0, fmt.Errorf("openai: POST %s: reading the answer: %w", endpoint, err)
	}
	if resp.StatusCode/100 != 2 {
		se := &StatusError{URL: endpoint, StatusCode: resp.StatusCode, Body: snippet(body)}
		if !retryable(resp.StatusCode) {
			return -1, se
		}
		return retryAfter(resp.Header.Get("Retry-After"), c.cfg.BackoffMax), se
	}
	if err := json.Unmarshal(body, out); err != nil {
		return -1, fmt.Errorf("openai: POST %s: answer is not the expected JSON: %v: %s", endpoint, err, snippet(body))
	}
	return 0, nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// retryAfter parses a Retry-After header (seconds or an HTTP date); 0 when
// absent or unreadable.
func retryAfter(h string, limit time.Duration) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = time.Until(t)
	}
	if d <= 0 {
		return 0
	}
	return min(d, limit)
}

func (c *Client) backoff(attempt int) time.Duration {
	ceil := c.cfg.BackoffBase << min(attempt, 30)
	if ceil <= 0 || ceil > c.cfg.BackoffMax {
		ceil = c.cfg.BackoffMax
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Duration(c.rnd.Int64N(int64(ceil)) + 1)
}
