package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/eval"
)

// BenchmarkGenerate measures the client's own cost per request (retry
// bookkeeping, the concurrency bound, JSON) against the reference: a bare
// net/http + encoding/json loop with the same concurrency, on the same local
// server, once with Go's default transport (2 idle connections per host) and
// once with a pool as large as the concurrency, as the client uses. One op is
// 64 chat requests, 8 in flight.
func BenchmarkGenerate(b *testing.B) {
	const answer = `{"choices":[{"index":0,"message":{"role":"assistant","content":"Stolicą Polski jest Warszawa."},"finish_reason":"stop"}],"usage":{"completion_tokens":7}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	defer srv.Close()
	const n, inFlight = 64, 8
	reqs := make([]eval.GenerateRequest, n)
	for i := range reqs {
		reqs[i] = eval.GenerateRequest{
			Messages:  []corpus.Message{{Role: corpus.RoleUser, Content: fmt.Sprintf("Pytanie %d: jaka jest stolica Polski?", i)}},
			MaxTokens: 64,
		}
	}
	b.Run("pltune", func(b *testing.B) {
		c, err := New(Config{BaseURL: srv.URL, Model: "m", Concurrency: inFlight})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := c.Generate(context.Background(), reqs); err != nil {
				b.Fatal(err)
			}
		}
	})
	pooled := http.DefaultTransport.(*http.Transport).Clone()
	pooled.MaxIdleConnsPerHost = inFlight
	for _, ref := range []struct {
		name   string
		client *http.Client
	}{{"bare-default-transport", &http.Client{}}, {"bare-pooled", &http.Client{Transport: pooled}}} {
		b.Run(ref.name, func(b *testing.B) { bareLoop(b, ref.client, srv.URL, reqs, inFlight) })
	}
}

func bareLoop(b *testing.B, client *http.Client, url string, reqs []eval.GenerateRequest, inFlight int) {
	for b.Loop() {
		sem := make(chan struct{}, inFlight)
		var wg sync.WaitGroup
		for i := range reqs {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				body, _ := json.Marshal(map[string]any{
					"model": "m", "max_tokens": 64,
					"messages": []map[string]string{{"role": "user", "content": reqs[i].Messages[0].Content}},
				})
				resp, err := client.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				var out response
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if err != nil || len(out.Choices) == 0 {
					b.Error("bad answer", err)
				}
			})
		}
		wg.Wait()
	}
}
