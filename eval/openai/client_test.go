package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/eval"
)

// fakeServer is an OpenAI-compatible server. Its "tokenizer" splits text
// into words with their leading space; a token's log-probability is −0.1 per
// character, and a token holding "X" is never the top choice.
type fakeServer struct {
	t *testing.T
	// byteOffsets counts text_offset in bytes, not characters: offsets that
	// drift from the text, as when a server measures undecodable pieces.
	byteOffsets bool
	mu          sync.Mutex
	bodies      []map[string]any
	headers     []http.Header
	inFlight    int
	maxIn       int
	// fail, when set, may write an error answer and return true.
	fail  func(w http.ResponseWriter, n int) bool
	calls atomic.Int64
	echo  bool // support echo with logprobs
	delay time.Duration
}

var tokenRE = regexp.MustCompile(`\s*\S+|\s+`)

func (s *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(s.calls.Add(1))
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	s.headers = append(s.headers, r.Header.Clone())
	s.inFlight++
	s.maxIn = max(s.maxIn, s.inFlight)
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.inFlight--; s.mu.Unlock() }()
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-r.Context().Done():
			return
		}
	}
	if s.fail != nil && s.fail(w, n) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/chat/completions":
		msgs := body["messages"].([]any)
		last := msgs[len(msgs)-1].(map[string]any)["content"].(string)
		fmt.Fprintf(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"completion_tokens":3}}`, "Echo: "+last)
	case "/v1/completions":
		var prompts []string
		switch p := body["prompt"].(type) {
		case string:
			prompts = []string{p}
		case []any:
			for _, x := range p {
				prompts = append(prompts, x.(string))
			}
		}
		resp := map[string]any{}
		var choices []map[string]any
		for i, p := range prompts {
			ch := map[string]any{"index": i, "text": "raw: " + p, "finish_reason": "length"}
			if body["echo"] == true && s.echo {
				ch["logprobs"] = s.logprobs(p, body["max_tokens"].(float64) == 1)
			}
			choices = append(choices, ch)
		}
		// Answer in reverse order: clients must sort by index.
		for i, j := 0, len(choices)-1; i < j; i, j = i+1, j-1 {
			choices[i], choices[j] = choices[j], choices[i]
		}
		resp["choices"] = choices
		json.NewEncoder(w).Encode(resp)
	default:
		http.NotFound(w, r)
	}
}

func (s *fakeServer) logprobs(p string, generate bool) map[string]any {
	toks := tokenRE.FindAllString(p, -1)
	if generate {
		toks = append(toks, " next")
	}
	var lps []any
	var tops []any
	var offs []int
	off := 0
	for i, tok := range toks {
		offs = append(offs, off)
		if s.byteOffsets {
			off += len(tok)
		} else {
			off += utf8.RuneCountInString(tok)
		}
		if i == 0 {
			lps = append(lps, nil)
			tops = append(tops, nil)
			continue
		}
		lp := -0.1 * float64(utf8.RuneCountInString(tok))
		lps = append(lps, lp)
		top := map[string]float64{tok: lp}
		if strings.Contains(tok, "X") {
			top["other"] = lp + 1
		}
		tops = append(tops, top)
	}
	return map[string]any{"tokens": toks, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offs}
}

func newServer(t *testing.T, s *fakeServer) (*httptest.Server, *fakeServer) {
	s.t = t
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, s
}

func fastConfig(url string) Config {
	return Config{BaseURL: url, Model: "m", BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, Timeout: 2 * time.Second}
}

func TestGenerateChat(t *testing.T) {
	srv, fs := newServer(t, &fakeServer{})
	t.Setenv("MY_KEY", "sekret")
	cfg := fastConfig(srv.URL) // no /v1: the client adds it
	cfg.APIKeyEnv = "MY_KEY"
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gens, err := c.Generate(context.Background(), []eval.GenerateRequest{{
		Messages:  []corpus.Message{{Role: corpus.RoleSystem, Content: "Bądź zwięzły."}, {Role: corpus.RoleUser, Content: "Cześć"}},
		MaxTokens: 64, Temperature: 0.5, Seed: 7, Stop: []string{"\n\n"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if gens[0].Text != "Echo: Cześć" || gens[0].FinishReason != "stop" || gens[0].Tokens != 3 {
		t.Errorf("generation = %+v", gens[0])
	}
	b := fs.bodies[0]
	if b["model"] != "m" || b["max_tokens"] != 64.0 || b["temperature"] != 0.5 || b["seed"] != 7.0 || b["stop"].([]any)[0] != "\n\n" {
		t.Errorf("request body = %v", b)
	}
	if msgs := b["messages"].([]any); len(msgs) != 2 || msgs[0].(map[string]any)["role"] != "system" {
		t.Errorf("messages = %v", msgs)
	}
	if got := fs.headers[0].Get("Authorization"); got != "Bearer sekret" {
		t.Errorf("Authorization = %q; want the key from MY_KEY", got)
	}
}

func TestGenerateRawPrompt(t *testing.T) {
	srv, fs := newServer(t, &fakeServer{})
	c, _ := New(fastConfig(srv.URL + "/v1"))
	gens, err := c.Generate(context.Background(), []eval.GenerateRequest{{Prompt: "Ala ma"}})
	if err != nil {
		t.Fatal(err)
	}
	if gens[0].Text != "raw: Ala ma" {
		t.Errorf("text = %q", gens[0].Text)
	}
	if _, ok := fs.bodies[0]["max_tokens"]; ok {
		t.Errorf("max_tokens sent although unset: %v", fs.bodies[0])
	}
	if fs.headers[0].Get("Authorization") != "" && c.key == "" {
		t.Error("Authorization sent without a key")
	}
}

func TestLoglikelihood(t *testing.T) {
	srv, fs := newServer(t, &fakeServer{echo: true})
	cfg := fastConfig(srv.URL)
	cfg.BatchSize = 2
	c, _ := New(cfg)
	reqs := []eval.LoglikelihoodRequest{
		{Context: "Pytanie: stolica?\nOdpowiedź:", Continuation: " Warszawa"},
		{Context: "Pytanie: stolica?\nOdpowiedź:", Continuation: " Nowy Sącz"},
		{Context: "Zażółć", Continuation: " gęślą jaźń"},
		{Context: "Ala", Continuation: " ma Xkota"},
		// The boundary falls inside a token ("Odp" + "owiedź"): that token counts.
		{Context: "Odp", Continuation: "owiedź tak"},
	}
	res, err := c.Loglikelihood(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		lp     float64
		greedy bool
	}{
		{-0.9, true},       // " Warszawa"
		{-1.0, true},       // " Nowy", " Sącz"
		{-1.1, true},       // " gęślą", " jaźń": characters, not bytes
		{-0.9, false},      // " Xkota" is not the top token
		{-0.4 - 0.0, true}, // " tak"; "Odpowiedź" is the first token and has no log-prob
	}
	for i, w := range want {
		if math.Abs(res[i].LogProb-w.lp) > 1e-9 || res[i].Greedy != w.greedy {
			t.Errorf("request %d: %+v; want logprob %v, greedy %v", i, res[i], w.lp, w.greedy)
		}
	}
	// 5 prompts and their 4 distinct contexts, in batches of 2.
	if len(fs.bodies) != 5 {
		t.Errorf("%d requests for 9 prompts in batches of 2; want 5", len(fs.bodies))
	}
	b := fs.bodies[0]
	if b["echo"] != true || b["logprobs"] != 1.0 || b["max_tokens"] != 1.0 || b["temperature"] != 0.0 {
		t.Errorf("body = %v; want echo, logprobs 1, max_tokens 1, temperature 0", b)
	}
}

// With offsets that drift from the text, the continuation is still found:
// by the context's own tokens.
func TestLoglikelihoodDriftingOffsets(t *testing.T) {
	srv, _ := newServer(t, &fakeServer{echo: true, byteOffsets: true})
	c, _ := New(fastConfig(srv.URL))
	res, err := c.Loglikelihood(context.Background(), []eval.LoglikelihoodRequest{
		{Context: "Zażółć gęślą", Continuation: " jaźń"},
		{Context: "Zażółć gęślą", Continuation: " żółw"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{-0.5, -0.5} {
		if math.Abs(res[i].LogProb-want) > 1e-9 {
			t.Errorf("request %d: logprob %v; want %v (the continuation's token only)", i, res[i].LogProb, want)
		}
	}
}

func TestLoglikelihoodMaxTokensZero(t *testing.T) {
	srv, fs := newServer(t, &fakeServer{echo: true})
	cfg := fastConfig(srv.URL)
	cfg.EchoMaxTokensZero = true
	c, _ := New(cfg)
	res, err := c.Loglikelihood(context.Background(), []eval.LoglikelihoodRequest{{Context: "Ala", Continuation: " ma kota"}})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(res[0].LogProb - -0.8) > 1e-9 {
		t.Errorf("logprob %v; want -0.8 (\" ma\" and \" kota\")", res[0].LogProb)
	}
	if fs.bodies[0]["max_tokens"] != 0.0 {
		t.Errorf("max_tokens = %v; want 0", fs.bodies[0]["max_tokens"])
	}
}

func TestLoglikelihoodWithoutEcho(t *testing.T) {
	srv, _ := newServer(t, &fakeServer{})
	c, _ := New(fastConfig(srv.URL))
	_, err := c.Loglikelihood(context.Background(), []eval.LoglikelihoodRequest{{Context: "a", Continuation: " b"}})
	if !errors.Is(err, ErrNoPromptLogprobs) {
		t.Errorf("error = %v; want ErrNoPromptLogprobs", err)
	}
	// llama.cpp's server ignores echo and returns the generated token's
	// log-probability alone.
	llamacpp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Prompt []string }
		json.NewDecoder(r.Body).Decode(&body)
		var chs []string
		for i := range body.Prompt {
			chs = append(chs, fmt.Sprintf(`{"index":%d,"text":" c","logprobs":{"tokens":[" c"],"token_logprobs":[-0.5],"top_logprobs":[{" c":-0.5}],"text_offset":[3]}}`, i))
		}
		io.WriteString(w, `{"choices":[`+strings.Join(chs, ",")+`]}`)
	}))
	defer llamacpp.Close()
	c, _ = New(fastConfig(llamacpp.URL))
	_, err = c.Loglikelihood(context.Background(), []eval.LoglikelihoodRequest{{Context: "a", Continuation: " b"}})
	if !errors.Is(err, ErrNoPromptLogprobs) {
		t.Errorf("generated-only logprobs: error = %v; want ErrNoPromptLogprobs", err)
	}
}

func chat(c *Client) error {
	_, err := c.Generate(context.Background(), []eval.GenerateRequest{{Messages: []corpus.Message{{Role: corpus.RoleUser, Content: "x"}}}})
	return err
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		fail      func(w http.ResponseWriter, n int) bool
		retries   int
		wantErr   string
		wantCalls int64
	}{
		{"5xx then success", func(w http.ResponseWriter, n int) bool {
			if n <= 2 {
				http.Error(w, "overloaded", http.StatusServiceUnavailable)
				return true
			}
			return false
		}, 0, "", 3},
		{"429 then success", func(w http.ResponseWriter, n int) bool {
			if n == 1 {
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return true
			}
			return false
		}, 0, "", 2},
		{"5xx forever", func(w http.ResponseWriter, n int) bool {
			http.Error(w, "boom", http.StatusInternalServerError)
			return true
		}, 3, "500 Internal Server Error: boom (gave up after 4 attempts)", 4},
		{"400 is not retried", func(w http.ResponseWriter, n int) bool {
			http.Error(w, `{"error":"bad model"}`, http.StatusBadRequest)
			return true
		}, 0, `400 Bad Request: {"error":"bad model"}`, 1},
		{"no retries", func(w http.ResponseWriter, n int) bool {
			http.Error(w, "boom", http.StatusBadGateway)
			return true
		}, -1, "502 Bad Gateway", 1},
		{"bad JSON is not retried", func(w http.ResponseWriter, n int) bool {
			w.Write([]byte("<html>"))
			return true
		}, 0, "not the expected JSON", 1},
	}
	for _, tt := range tests {
		srv, fs := newServer(t, &fakeServer{fail: tt.fail})
		cfg := fastConfig(srv.URL)
		cfg.MaxRetries = tt.retries
		c, _ := New(cfg)
		err := chat(c)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v; want %q", tt.name, err, tt.wantErr)
		}
		if got := fs.calls.Load(); got != tt.wantCalls {
			t.Errorf("%s: %d calls; want %d", tt.name, got, tt.wantCalls)
		}
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	srv, _ := newServer(t, &fakeServer{fail: func(w http.ResponseWriter, n int) bool {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	}})
	cfg := fastConfig(srv.URL)
	cfg.BackoffMax = 3 * time.Second
	c, _ := New(cfg)
	start := time.Now()
	if err := chat(c); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %v; the server asked for 1 s", d)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	if d := retryAfter("2", time.Minute); d != 2*time.Second {
		t.Errorf("seconds: %v", d)
	}
	if d := retryAfter("120", time.Second*10); d != 10*time.Second {
		t.Errorf("capped: %v", d)
	}
	if d := retryAfter(time.Now().Add(5*time.Second).UTC().Format(http.TimeFormat), time.Minute); d < 3*time.Second || d > 5*time.Second {
		t.Errorf("date: %v", d)
	}
	if d := retryAfter("soon", time.Minute); d != 0 {
		t.Errorf("garbage: %v", d)
	}
}

func TestTimeout(t *testing.T) {
	srv, fs := newServer(t, &fakeServer{})
	cfg := fastConfig(srv.URL)
	cfg.Timeout = 50 * time.Millisecond
	cfg.MaxRetries = 2
	fs.delay = 500 * time.Millisecond
	c, _ := New(cfg)
	err := chat(c)
	if err == nil || !strings.Contains(err.Error(), "no answer within 50ms") || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Errorf("error = %v; want a timeout after 3 attempts", err)
	}

	// A slow first answer, then a fast one: the retry succeeds.
	srv2, fs2 := newServer(t, &fakeServer{})
	fs2.fail = func(w http.ResponseWriter, n int) bool {
		if n == 1 {
			time.Sleep(300 * time.Millisecond)
		}
		return false
	}
	cfg2 := fastConfig(srv2.URL)
	cfg2.Timeout = 100 * time.Millisecond
	c2, _ := New(cfg2)
	if err := chat(c2); err != nil {
		t.Errorf("slow then fast: %v", err)
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	srv, _ := newServer(t, &fakeServer{fail: func(w http.ResponseWriter, n int) bool {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}})
	cfg := fastConfig(srv.URL)
	cfg.BackoffMax = time.Minute
	c, _ := New(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Generate(ctx, []eval.GenerateRequest{{Prompt: "x"}})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("error %v after %v; want the context's deadline, promptly", err, time.Since(start))
	}
}

func TestConcurrencyBound(t *testing.T) {
	srv, fs := newServer(t, &fakeServer{delay: 20 * time.Millisecond})
	cfg := fastConfig(srv.URL)
	cfg.Concurrency = 3
	c, _ := New(cfg)
	reqs := make([]eval.GenerateRequest, 12)
	for i := range reqs {
		reqs[i].Prompt = fmt.Sprint(i)
	}
	gens, err := c.Generate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range gens {
		if g.Text != fmt.Sprintf("raw: %d", i) {
			t.Errorf("generation %d = %q; out of order", i, g.Text)
		}
	}
	if fs.maxIn > 3 || fs.maxIn < 2 {
		t.Errorf("%d requests in flight; want 2..3", fs.maxIn)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Model: "m"}, "no base URL"},
		{Config{BaseURL: "localhost:8000", Model: "m"}, "want http(s)://"},
		{Config{BaseURL: "http://localhost:8000"}, "no model name"},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v; want %q", tt.cfg, err, tt.want)
		}
	}
}
