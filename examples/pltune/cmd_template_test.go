package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/tokenize"
)

// trainedTokenizerDir writes a small trained tokenizer (Llama-3 special
// tokens and chat template) so the command runs without downloaded files.
func trainedTokenizerDir(t *testing.T) string {
	t.Helper()
	texts := []string{"Ala ma kota, a kot ma Alę.", "Stolicą Polski jest Warszawa.", "Cześć! Jak się masz?"}
	tt, err := tokenize.TrainBPE(context.Background(), slices.Values(texts), tokenize.BPETrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := tt.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTemplateCommand(t *testing.T) {
	dir := trainedTokenizerDir(t)
	const conv = `[{"role":"user","content":"Cześć"},{"role":"assistant","content":"Dzień dobry <b>!</b>"}]`
	llama := "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nCześć<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nDzień dobry <b>!</b><|eot_id|>"
	tests := []struct {
		name    string
		stdin   string
		args    []string
		code    int
		want    []string // rendered strings, one per output line
		wantErr string
	}{
		{"array", conv + "\n", []string{"--tokenizer", dir}, 0, []string{llama}, ""},
		{"object with system and blank lines", "\n" + `{"system":"Bądź zwięzły.","messages":[{"role":"user","content":"Hej"}]}` + "\n\n", []string{"--tokenizer", dir, "--generation-prompt"}, 0,
			[]string{"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBądź zwięzły.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHej<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"}, ""},
		{"two lines", conv + "\n" + conv, []string{"--tokenizer", dir}, 0, []string{llama, llama}, ""},
		{"builtin chatml", `[{"role":"user","content":"Hej"}]`, []string{"--tokenizer", dir, "--builtin", "chatml", "--generation-prompt"}, 0,
			[]string{"<|im_start|>user\nHej<|im_end|>\n<|im_start|>assistant\n"}, ""},
		{"bad json", conv + "\n{\"messages\": [\n", []string{"--tokenizer", dir}, 1, []string{llama}, "line 2: "},
		{"no messages", `{"id":"x"}`, []string{"--tokenizer", dir}, 1, nil, `line 1: object has no "messages"`},
		{"bad role", `[{"role":"asistant","content":"x"}]`, []string{"--tokenizer", dir}, 1, nil, `message 1 has role "asistant"`},
		{"template raises", `[{"role":"user","content":"a"},{"role":"user","content":"b"}]`, []string{"--tokenizer", dir, "--builtin", "gemma"}, 1, nil, "line 1: tokenize: chat template raised: Conversation roles must alternate"},
		{"unknown builtin", "", []string{"--tokenizer", dir, "--builtin", "llama9"}, 2, nil, `--builtin "llama9"`},
		{"missing tokenizer flag", "", nil, 2, nil, "--tokenizer is required"},
		{"missing tokenizer", "", []string{"--tokenizer", dir + "/nope"}, 1, nil, "nope"},
		{"wrong flag", "", []string{"--nope"}, 2, nil, "flag provided but not defined: -nope"},
		{"argument", "", []string{"--tokenizer", dir, "extra"}, 2, nil, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := &cliEnv{stdin: strings.NewReader(tt.stdin), stdout: &out, stderr: &errb}
			code := run(context.Background(), env, append([]string{"template"}, tt.args...))
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			if !strings.Contains(errb.String(), tt.wantErr) || tt.wantErr == "" && errb.Len() > 0 {
				t.Errorf("stderr %q, want %q", errb.String(), tt.wantErr)
			}
			if tt.code == 2 {
				return // the flag package prints the usage on standard output
			}
			var got []string
			dec := json.NewDecoder(&out)
			for dec.More() {
				var s string
				if err := dec.Decode(&s); err != nil {
					t.Fatalf("output is not JSON strings: %v", err)
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("output %q\nwant   %q", got, tt.want)
			}
		})
	}
}

func TestTemplateHelp(t *testing.T) {
	var out bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &out}
	if code := run(context.Background(), env, []string{"template", "--help"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "usage: pltune template --tokenizer PATH") || !strings.Contains(out.String(), "-generation-prompt") {
		t.Errorf("help %q", out.String())
	}
}

func FuzzParseConversation(f *testing.F) {
	f.Add([]byte(`[{"role":"user","content":"Cześć"}]`))
	f.Add([]byte(`{"system":"s","messages":[{"role":"assistant","content":""}]}`))
	f.Add([]byte(`{"messages":null}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			return
		}
		msgs, err := parseConversation(b)
		if err == nil && len(msgs) == 0 {
			t.Fatal("no error and no messages")
		}
	})
}
