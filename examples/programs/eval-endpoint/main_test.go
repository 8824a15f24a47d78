package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestAgainstFakeServer runs every task against a chat endpoint that
// always answers "A" and checks the scores that answer must get.
func TestAgainstFakeServer(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "no such endpoint", http.StatusNotFound)
			return
		}
		calls.Add(1)
		json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{
			"index": 0, "message": map[string]string{"role": "assistant", "content": "A"}, "finish_reason": "stop",
		}}})
	}))
	defer srv.Close()
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--url", srv.URL + "/v1", "--model", "fake", "--mc-mode", "generative", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var res struct {
		Tasks []struct {
			Name    string `json:"name"`
			Refusal *struct {
				FalseRefusalRate float64 `json:"false_refusal_rate"`
			} `json:"refusal"`
			MC *struct {
				Generative *struct{ Total int } `json:"generative"`
			} `json:"mc"`
		} `json:"tasks"`
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Tasks) != 4 {
		t.Fatalf("%d tasks in results, want 4", len(res.Tasks))
	}
	for _, task := range res.Tasks {
		switch task.Name {
		case "refusal":
			if task.Refusal == nil || task.Refusal.FalseRefusalRate != 0 {
				t.Errorf("\"A\" is no refusal, got %+v", task.Refusal)
			}
		case "mc":
			if task.MC == nil || task.MC.Generative == nil || task.MC.Generative.Total == 0 {
				t.Errorf("no generative multiple-choice score: %+v", task.MC)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(out, "report.md")); err != nil {
		t.Error(err)
	}
	if !strings.Contains(stdout.String(), "report: ") {
		t.Errorf("stdout does not name the report: %q", stdout.String())
	}
	// A second run answers from the cache.
	before := calls.Load()
	if code := run(context.Background(), []string{"--url", srv.URL + "/v1", "--model", "fake", "--mc-mode", "generative", "--out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("second run: exit %d", code)
	}
	if calls.Load() != before {
		t.Errorf("second run asked the server %d more times; want all answers from the cache", calls.Load()-before)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "-mc-mode string"},
		{[]string{"--url", "http://x"}, 2, "--url and --model are required"},
		{[]string{"--url", "http://x", "--model", "m", "--tasks", "plcc,nope"}, 2, `unknown task "nope"`},
		{[]string{"--url", "http://x", "--model", "m", "--mc-mode", "guess"}, 2, `--mc-mode "guess"`},
		{[]string{"--bogus"}, 2, "not defined: -bogus"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tt.args, &stdout, &stderr); code != tt.code {
			t.Errorf("%v: exit %d, want %d", tt.args, code, tt.code)
		}
		if got := stdout.String() + stderr.String(); !strings.Contains(got, tt.want) {
			t.Errorf("%v: output %q lacks %q", tt.args, got, tt.want)
		}
	}
}
