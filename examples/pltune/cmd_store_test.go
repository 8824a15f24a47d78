package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pltune/pltune/tokstore"
)

const chatFile = `{"messages":[{"role":"user","content":"Jaka jest stolica Polski?"},{"role":"assistant","content":"Stolicą Polski jest Warszawa."}]}
{"messages":[{"role":"system","content":"Odpowiadaj krótko."},{"role":"user","content":"Ile nóg ma kot?"},{"role":"assistant","content":"Cztery."}]}
{"messages":[{"role":"user","content":"Cześć!"},{"role":"assistant","content":"Cześć! W czym mogę pomóc?"},{"role":"user","content":"Jak się masz?"},{"role":"assistant","content":"Dobrze, dziękuję."}]}
{"messages":[{"role":"user","content":"Podaj synonim słowa „szybki”."},{"role":"assistant","content":"Prędki."}]}
`

func runCLIInput(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), &cliEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

const textFile = `{"text": "Tatry to najwyższe pasmo górskie w Polsce."}
{"text": "Wisła jest najdłuższą rzeką Polski. Płynie przez Kraków i Warszawę."}
{"text": "Ala ma kota, a kot ma Alę."}
`

// corpus tokenize builds text and chat stores; a second run finds the work
// done; ranks under torchrun's variables each build their share.
func TestCorpusTokenizeCommand(t *testing.T) {
	tok := trainedTokenizerDir(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "text.jsonl")
	chat := filepath.Join(dir, "chat.jsonl")
	os.WriteFile(text, []byte(textFile), 0o644)
	os.WriteFile(chat, []byte(chatFile), 0o644)

	store := filepath.Join(dir, "text-store")
	code, out, errOut := runCLI(t, "corpus", "tokenize", "--tokenizer", tok, "--out", store, "--quiet", text)
	if code != 0 || !strings.Contains(out, "text store, 3 documents") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	s, err := tokstore.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	if s.Type() != tokstore.TypeText || s.Docs() != 3 {
		t.Fatalf("store: %s, %d docs", s.Type(), s.Docs())
	}
	s.Close()
	code, out, _ = runCLI(t, "corpus", "tokenize", "--tokenizer", tok, "--out", store, "--quiet", text)
	if code != 0 || !strings.Contains(out, "1 chunks were already done") {
		t.Fatalf("rerun: exit %d: %s", code, out)
	}

	chatStore := filepath.Join(dir, "chat-store")
	code, out, errOut = runCLI(t, "corpus", "tokenize", "--tokenizer", tok, "--out", chatStore, "--quiet", "--max-len", "512", chat)
	if code != 0 || !strings.Contains(out, "chat store, 4 documents") || !strings.Contains(out, "trained") {
		t.Fatalf("chat: exit %d\n%s\n%s", code, out, errOut)
	}

	ranks := filepath.Join(dir, "ranks")
	t.Setenv("WORLD_SIZE", "2")
	t.Setenv("RANK", "1")
	text2 := filepath.Join(dir, "text2.txt")
	os.WriteFile(text2, []byte("Pierwszy akapit.\n\nDrugi akapit,\nw dwóch liniach.\n"), 0o644)
	code, out, errOut = runCLI(t, "corpus", "tokenize", "--tokenizer", tok, "--out", ranks, "--quiet", text, text2)
	if code != 0 || !strings.Contains(out, "the manifest is written by the last rank") {
		t.Fatalf("rank 1: exit %d: %s %s", code, out, errOut)
	}
	t.Setenv("RANK", "0")
	if code, _, errOut = runCLI(t, "corpus", "tokenize", "--tokenizer", tok, "--out", ranks, "--quiet", text2, text); code != 1 || !strings.Contains(errOut, "other inputs") {
		t.Fatalf("rank 0 with other inputs: exit %d, %s; want 1 and a refusal", code, errOut)
	}
	code, out, errOut = runCLI(t, "corpus", "tokenize", "--tokenizer", tok, "--out", ranks, "--quiet", text, text2)
	if code != 0 || !strings.Contains(out, "text store, 5 documents") {
		t.Fatalf("rank 0: exit %d: %s %s", code, out, errOut)
	}
	t.Setenv("RANK", "5")
	if code, _, errOut := runCLI(t, "corpus", "tokenize", "--tokenizer", tok, "--out", ranks, text); code != 1 || !strings.Contains(errOut, "RANK") {
		t.Fatalf("bad RANK: exit %d: %s", code, errOut)
	}

	for _, args := range [][]string{
		{"--out", store, text},
		{"--tokenizer", tok, text},
		{"--tokenizer", tok, "--out", store},
		{"--tokenizer", tok, "--out", store, "--type", "x", text},
	} {
		if code, _, _ := runCLI(t, append([]string{"corpus", "tokenize"}, args...)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
