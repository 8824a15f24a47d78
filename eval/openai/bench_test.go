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
	"time"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/eval"
)

// BenchmarkGenerate measures the client's own cost per request (retry
// bookkeeping, the concurrency bound, JSON) against the reference: a bare
// net/http + encoding/json loop with the same concurrency, on the same local
// server, once with Go's default transport (2 idle connections per host) and
// once with a pool as large as the concurrency, as the client uses. One op is
// 64 chat requests, 8 in flight, by each of the three.
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
	c, err := New(Config{BaseURL: srv.URL, Model: "m", Concurrency: inFlight})
	if err != nil {
		b.Fatal(err)
	}
	pooled := http.DefaultTransport.(*http.Transport).Clone()
	pooled.MaxIdleConnsPerHost = inFlight
	variants := []struct {
		name string
		run  func()
	}{
		{"pltune", func() {
			if _, err := c.Generate(context.Background(), reqs); err != nil {
				b.Fatal(err)
			}
		}},
		{"bare-default", func() { bareRound(b, &http.Client{}, srv.URL, reqs, inFlight) }},
		{"bare-pooled", func() { bareRound(b, &http.Client{Transport: pooled}, srv.URL, reqs, inFlight) }},
	}
	// The variants take turns within each op, so that the load of a shared
	// machine falls on all of them alike; medians are reported.
	times := make([][]float64, len(variants))
	for b.Loop() {
		for i, v := range variants {
			start := time.Now()
			v.run()
			times[i] = append(times[i], float64(time.Since(start).Microseconds())/1000)
		}
	}
	med := make([]float64, len(variants))
	for i, v := range variants {
		med[i] = eval.Summarize(times[i]).Median
		b.ReportMetric(med[i], v.name+"-ms")
	}
	b.ReportMetric(med[0]/med[1], "pltune/bare-default")
	b.ReportMetric(med[0]/med[2], "pltune/bare-pooled")
}

// bareRound sends reqs with plain net/http and encoding/json.
func bareRound(b *testing.B, client *http.Client, url string, reqs []eval.GenerateRequest, inFlight int) {
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
