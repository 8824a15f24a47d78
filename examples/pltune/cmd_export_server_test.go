//go:build pltune_torch

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startLlamaServer serves a GGUF file with llama.cpp's llama-server on a
// free local port and returns its /v1 base URL; the server is stopped when
// the test ends.
func startLlamaServer(t *testing.T, server, model string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	logPath := filepath.Join(t.TempDir(), "llama-server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// Greedy, one slot, F32 KV cache, no flash attention: the same
	// arithmetic as the llama.cpp evaluation in TestExportGGUFLlamaCpp; the
	// GGUF's chat template rendered by llama.cpp's Jinja engine.
	cmd := exec.Command(server, "-m", model, "--host", "127.0.0.1", "--port", fmt.Sprint(port),
		"-c", "4096", "-np", "1", "-t", "2", "-ctk", "f32", "-ctv", "f32", "-fa", "off", "--jinja", "--no-webui")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("llama-server did not become ready: %v\n%s", err, lastN(string(b), 2000))
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/v1", port)
}

func lastN(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// generations reads an eval run's cache.jsonl: task/item → generated text.
func generations(t *testing.T, dir string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "cache.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var r struct {
			Task, Item, Mode string
			Generation       *struct{ Text string }
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if r.Generation != nil {
			out[r.Task+"/"+r.Item] = r.Generation.Text
		}
	}
	return out
}

// TestEvalEndpointLlamaServer trains a tiny model with pltune sft, exports
// it to GGUF, serves it with llama.cpp's llama-server and runs pltune eval
// on the generation sample tasks and multiple choice in generative mode
// (llama-server returns no prompt log-probs) against the server and in
// process: every generated answer and every score must be equal.
func TestEvalEndpointLlamaServer(t *testing.T) {
	_, server := llamaCppPaths(t)
	if server == "" {
		t.Skip("llama-server is not built (internal/scripts/llamacpp.sh, run by make testdata)")
	}
	tokDir := npmTokenizer(t, "llama3_1")
	dir := t.TempDir()
	final := trainTiny(t, dir, exportCases[0].config, tokDir, "")
	model := filepath.Join(dir, "model.gguf")
	if code, stdout, stderr := runTrainCLI(t, "export", "gguf", "--model", final, "--out", model, "--type", "f32", "--quiet"); code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, stdout, stderr)
	}
	base := startLlamaServer(t, server, model)
	common := []string{"eval", "--task", "samples:plcc", "--task", "samples:refusal", "--task", "samples:verbosity", "--task", "samples:mc",
		"--mc-mode", "generative", "--max-tokens", "24", "--no-style", "--quiet"}
	srvOut, localOut := filepath.Join(dir, "server"), filepath.Join(dir, "local")
	if code, stdout, stderr := runTrainCLI(t, append(common, "--endpoint", base, "--model-name", "tiny", "--out", srvOut, "--concurrency", "1", "--batch", "1")...); code != 0 {
		t.Fatalf("eval --endpoint: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runTrainCLI(t, append(common, "--model", final, "--out", localOut)...); code != 0 {
		t.Fatalf("eval --model: exit %d\n%s\n%s", code, stdout, stderr)
	}
	gs, gl := generations(t, srvOut), generations(t, localOut)
	if len(gs) == 0 || len(gs) != len(gl) {
		t.Fatalf("%d answers from llama-server, %d in process", len(gs), len(gl))
	}
	diff, nonEmpty := 0, 0
	for k, v := range gl {
		if strings.TrimSpace(v) != "" {
			nonEmpty++
		}
		if gs[k] != v {
			if diff < 5 {
				t.Errorf("%s: llama-server %q, pltune %q", k, gs[k], v)
			}
			diff++
		}
	}
	if diff > 0 {
		t.Errorf("%d of %d answers differ", diff, len(gl))
	}
	if nonEmpty < len(gl)/4 {
		t.Errorf("only %d of %d answers are not empty; the comparison needs generated text", nonEmpty, len(gl))
	}
	scores := func(d string) string {
		b, err := os.ReadFile(filepath.Join(d, "results.json"))
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Tasks []map[string]json.RawMessage
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		for _, task := range r.Tasks {
			fmt.Fprintf(&sb, "%s", task["name"])
			for _, k := range []string{"openqa", "mc", "refusal", "verbosity"} {
				if v, ok := task[k]; ok {
					fmt.Fprintf(&sb, " %s=%s", k, v)
				}
			}
			sb.WriteString("\n")
		}
		return sb.String()
	}
	if s, l := scores(srvOut), scores(localOut); s != l {
		t.Errorf("scores differ:\nllama-server:\n%s\nin process:\n%s", s, l)
	} else {
		t.Logf("%d answers equal (%d not empty; the rest end at once with <|eot_id|> on both sides), scores equal", len(gl), nonEmpty)
	}
}
