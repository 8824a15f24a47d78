package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sentencePieceDir writes a tiny SentencePiece-style tokenizer (Llama 2
// layout: ▁ for spaces, <s> added by the post-processor, <unk> for unknown
// characters).
func sentencePieceDir(t *testing.T) string {
	t.Helper()
	const tj = `{
  "added_tokens": [{"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
  "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": false,
    "vocab": {"<unk>": 0, "<s>": 1, "▁": 2, "a": 3, "b": 4, "▁a": 5, "ab": 6},
    "merges": ["▁ a", "a b"]}
}`
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(tj), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestTokenizeCommand(t *testing.T) {
	dir := sentencePieceDir(t)
	tests := []struct {
		name    string
		stdin   string
		args    []string
		code    int
		stdout  string
		wantErr string
	}{
		{"plain", "\"ab a\"\n\"xy\"\n", []string{"--tokenizer", dir}, 0, "[5,4,5]\n[2,0]\n", ""},
		{"special", "\"ab a\"\n", []string{"--tokenizer", dir, "--special"}, 0, "[1,5,4,5]\n", ""},
		{"special token in text, blank lines", "\n\"<s>a\"\n\n\"\"\n", []string{"--tokenizer", filepath.Join(dir, "tokenizer.json")}, 0, "[1,5]\n[]\n", ""},
		{"bad line after good ones", "\"a\"\n42\n\"a\"\n", []string{"--tokenizer", dir}, 1, "[5]\n", "line 2: want a JSON string"},
		{"broken json", "\"a\n", []string{"--tokenizer", dir}, 1, "", "line 1: want a JSON string"},
		{"missing tokenizer flag", "", nil, 2, "", "--tokenizer is required"},
		{"missing tokenizer", "", []string{"--tokenizer", filepath.Join(dir, "nope")}, 1, "", "nope"},
		{"wrong flag", "", []string{"--tokenizer", dir, "--bos"}, 2, "", "flag provided but not defined: -bos"},
		{"argument", "", []string{"--tokenizer", dir, "x"}, 2, "", `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := &cliEnv{stdin: strings.NewReader(tt.stdin), stdout: &out, stderr: &errb}
			code := run(context.Background(), env, append([]string{"tokenize"}, tt.args...))
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			if out.String() != tt.stdout {
				t.Errorf("stdout %q, want %q", out.String(), tt.stdout)
			}
			if tt.wantErr != "" && !strings.Contains(errb.String(), tt.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", errb.String(), tt.wantErr)
			}
			if tt.code == 2 && strings.Count(strings.TrimSpace(errb.String()), "\n") > 0 {
				t.Errorf("usage error is not one line: %q", errb.String())
			}
		})
	}
}

func TestTokenizeHelp(t *testing.T) {
	var out, errb bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	if code := run(context.Background(), env, []string{"tokenize", "--help"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"usage: pltune tokenize --tokenizer PATH", "-special", "-tokenizer"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}

// TestTokenizeManyLines crosses the batch boundary and keeps the order.
func TestTokenizeManyLines(t *testing.T) {
	dir := sentencePieceDir(t)
	var in, want strings.Builder
	for i := range 2*tokenizeBatch + 3 {
		if i%2 == 0 {
			in.WriteString("\"ab a\"\n")
			want.WriteString("[5,4,5]\n")
		} else {
			in.WriteString("\"b\"\n")
			want.WriteString("[2,4]\n")
		}
	}
	var out, errb bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(in.String()), stdout: &out, stderr: &errb}
	if code := run(context.Background(), env, []string{"tokenize", "--tokenizer", dir}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if out.String() != want.String() {
		t.Errorf("output differs from the expected %d lines", 2*tokenizeBatch+3)
	}
}
