package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

// tinyModel writes a Hugging Face folder with a small Llama and a BPE
// tokenizer trained on texts: the shape of a real model folder.
func tinyModel(t *testing.T, texts []string) string {
	t.Helper()
	dir := t.TempDir()
	tt, err := tokenize.TrainBPE(context.Background(), slices.Values(texts), tokenize.BPETrainOptions{VocabSize: 320})
	if err != nil {
		t.Fatal(err)
	}
	if err := tt.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := train.ParseConfig(fmt.Appendf(nil, `{"architectures": ["LlamaForCausalLM"], "vocab_size": %d, "hidden_size": 32,
		"intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 256, "torch_dtype": "float32"}`, len(tt.Vocab)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	if err := m.Save(dir, train.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestFinetune(t *testing.T) {
	chats := []string{
		"Jaka jest stolica Polski?", "Stolicą Polski jest Warszawa.",
		"Ile dni ma tydzień?", "Tydzień ma siedem dni.",
		"Jak się masz?", "Dziękuję, dobrze. A Pan?",
		"Podaj synonim słowa „szybki”.", "Na przykład „prędki”.",
	}
	data := filepath.Join(t.TempDir(), "chats.jsonl")
	var b strings.Builder
	for i := 0; i < len(chats); i += 2 {
		line, _ := json.Marshal(map[string]any{"messages": []map[string]string{{"role": "user", "content": chats[i]}, {"role": "assistant", "content": chats[i+1]}}})
		b.Write(append(line, '\n'))
	}
	if err := os.WriteFile(data, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	model := tinyModel(t, chats)
	tests := []struct {
		name  string
		merge bool
		files []string
	}{
		{"adapter", false, []string{"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"}},
		{"merged", true, []string{"config.json", "model.safetensors", "tokenizer.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			args := []string{"--model", model, "--data", data, "--out", out, "--max-steps", "3", "--grad-accum", "1", "--max-len", "128", "--lr", "1e-3"}
			if tt.merge {
				args = append(args, "--merge")
			}
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			for _, f := range tt.files {
				if _, err := os.Stat(filepath.Join(out, "final", f)); err != nil {
					t.Error(err)
				}
			}
			if !strings.Contains(stdout.String(), "3 steps") {
				t.Errorf("stdout %q does not report 3 steps", stdout.String())
			}
		})
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "-rank int"},
		{[]string{"--model", "m"}, 2, "are required"},
		{[]string{"--model", "m", "--data", "d", "--out", "o", "--device", "tpu"}, 2, `--device "tpu"`},
		{[]string{"--model", "m", "--data", "d", "--out", "o", "--rank", "0"}, 2, "must be positive"},
		{[]string{"--bogus"}, 2, "not defined: -bogus"},
		{[]string{"--model", "/nonexistent", "--data", "d", "--out", "o"}, 1, "/nonexistent"},
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
