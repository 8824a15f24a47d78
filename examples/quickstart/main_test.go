package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  string
		stderr  string
		oneLine bool
	}{
		{name: "help", args: []string{"--help"}, code: 0, stdout: "--fast"},
		{name: "unknown flag", args: []string{"--bogus"}, code: 2, stderr: "flag provided but not defined: -bogus", oneLine: true},
		{name: "argument", args: []string{"extra"}, code: 2, stderr: `unexpected argument "extra"`, oneLine: true},
		{name: "lora rank", args: []string{"--lora-rank", "0"}, code: 2, stderr: "--lora-rank 0", oneLine: true},
		{name: "device", args: []string{"--device", "tpu"}, code: 2, stderr: `--device "tpu"`, oneLine: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stdout %q, stderr %q; want %q and %q in them", out.String(), errb.String(), tt.stdout, tt.stderr)
			}
			if tt.oneLine && strings.Count(errb.String(), "\n") != 1 {
				t.Errorf("stderr is not one line: %q", errb.String())
			}
		})
	}
}

// TestFastPipeline runs the whole --fast pipeline and checks what a user
// would look at: the report, the charts, a checkpoint per stage and a
// falling loss in every stage's metrics.
func TestFastPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three stages")
	}
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--fast", "--out", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	if want := "report: " + filepath.Join(dir, "report.md"); !strings.Contains(out.String(), want) {
		t.Errorf("output does not say %q:\n%s", want, out.String())
	}
	for _, stage := range []string{"[1/8] corpus", "[3/8] cpt", "[4/8] sft", "[6/8] orpo", "[7/8] eval"} {
		if !strings.Contains(out.String(), stage) {
			t.Errorf("no progress line for %q", stage)
		}
	}

	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| organic |", "| converted |", "| synthetic |", // composition by origin
		"converted/pl-ner-news", // a capped source
		"| cpt |", "| sft |", "| orpo |",
		"PLCC-style open questions: accuracy", "multiple choice: acc_norm", "false refusal rate",
		"verbosity: words / reference words", "style findings per 1,000 words",
		"near chance", "](losses.png)", "](eval/comparison.png)",
	} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}

	for _, chart := range []string{"losses.png", "eval/comparison.png"} {
		f, err := os.Open(filepath.Join(dir, chart))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", chart, err)
		}
		if b := img.Bounds(); b.Dx() < 200 || b.Dy() < 100 {
			t.Errorf("%s is %v, too small to read", chart, b)
		}
	}

	for _, stage := range []string{"cpt", "sft", "orpo"} {
		for _, f := range []string{"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
			if _, err := os.Stat(filepath.Join(dir, stage, "final", f)); err != nil {
				t.Errorf("%s checkpoint: %v", stage, err)
			}
		}
		losses := readLosses(t, filepath.Join(dir, stage, "metrics.jsonl"))
		if len(losses) < 6 {
			t.Fatalf("%s: %d steps logged", stage, len(losses))
		}
		// Single steps are noisy (each sees other rows): compare the
		// means of the first and last thirds.
		third := len(losses) / 3
		first, last := mean(losses[:third]), mean(losses[len(losses)-third:])
		if !(last < first) {
			t.Errorf("%s loss did not go down: first third %.4f, last third %.4f (%v)", stage, first, last, losses)
		}
	}
	t.Run("model", func(t *testing.T) { testOnModel(t, filepath.Join(dir, "sft", "final")) })
}

// testOnModel runs the --model path (LoRA through every stage, the model's
// own tokenizer) on the Hugging Face folder model.
func testOnModel(t *testing.T, model string) {
	var out, errb bytes.Buffer
	dir := t.TempDir()
	if code := run(context.Background(), []string{"--fast", "--model", model, "--lora-rank", "4", "--out", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "tokenizer: the model's own") {
		t.Errorf("the run trained a tokenizer instead of using the model's:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "tokenizer")); err == nil {
		t.Error("a tokenizer folder was written for --model")
	}
	for _, stage := range []string{"cpt", "sft", "orpo"} {
		for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} {
			if _, err := os.Stat(filepath.Join(dir, stage, "final", f)); err != nil {
				t.Errorf("%s adapter: %v", stage, err)
			}
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(md, []byte("LoRA (rank 4) on `"+model+"`")) {
		t.Errorf("report.md does not name the LoRA run:\n%s", md[:min(len(md), 400)])
	}
}

func readLosses(t *testing.T, path string) []float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Loss *float64 `json:"loss"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if rec.Loss != nil {
			out = append(out, *rec.Loss)
		}
	}
	return out
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// cancelOn cancels when a line containing marker is written.
type cancelOn struct {
	marker string
	cancel context.CancelFunc
	buf    bytes.Buffer
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.marker) {
		c.cancel()
	}
	return len(p), nil
}

// TestInterruptKeepsFinishedStages cancels the run as SFT starts, as Ctrl-C
// does: the exit code is 1, the message says so, and the CPT model is
// complete.
func TestInterruptKeepsFinishedStages(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a stage")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &cancelOn{marker: "[4/8] sft", cancel: cancel}
	var errb bytes.Buffer
	if code := run(ctx, []string{"--fast", "--out", dir}, log, &errb); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, errb.String())
	}
	if !strings.Contains(errb.String(), "interrupted; finished stages are in "+dir) {
		t.Errorf("stderr %q does not say the run was interrupted", errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "cpt", "final", "model.safetensors")); err != nil {
		t.Errorf("the finished CPT stage lost its model: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.md")); err == nil {
		t.Error("an interrupted run wrote a report")
	}
}
