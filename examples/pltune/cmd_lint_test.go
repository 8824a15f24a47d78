package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runLintCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cliEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}
	code = run(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func TestLintCommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(bad, []byte("Szanowna Pani,\nDziękuję za list.\n\nZ poważaniem,\nJan"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "ok.txt")
	if err := os.WriteFile(good, []byte("Szanowna Pani,\ndziękuję za list.\n\nZ poważaniem\nJan"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		stdin      string
		args       []string
		code       int
		wantOut    []string
		wantErr    string
		wantNotOut string
	}{
		{"file with findings", "", []string{"lint", bad}, 1, []string{
			bad + ":2:1: greeting-capital: ",
			"(dziękuję)",
			bad + ":4:1: closing-comma: ",
		}, "", ""},
		{"clean file", "", []string{"lint", good}, 0, nil, "", ":"},
		{"stdin", "Myślę że tak.", []string{"lint"}, 1, []string{"<stdin>:1:6: missing-comma: "}, "", ""},
		{"column counts characters", "Źółć: 3.5 kg", []string{"lint"}, 1, []string{"<stdin>:1:7: decimal-point: "}, "", ""},
		{"clean stdin", "Myślę, że tak.", []string{"lint"}, 0, nil, "", ":"},
		{"rules", "", []string{"lint", "--rules"}, 0, []string{"missing-comma", "title-case"}, "", ""},
		{"help", "", []string{"lint", "--help"}, 0, []string{"usage: pltune lint"}, "", ""},
		{"wrong flag", "", []string{"lint", "--nope"}, 2, nil, "pltune lint: lint: flag provided but not defined: -nope\n", ""},
		{"missing file", "", []string{"lint", filepath.Join(dir, "none.txt")}, 1, nil, "none.txt", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runLintCLI(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tt.code, out, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout %q lacks %q", out, w)
				}
			}
			if tt.wantNotOut != "" && strings.Contains(out, tt.wantNotOut) {
				t.Errorf("stdout %q should not contain %q", out, tt.wantNotOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut, tt.wantErr)
			}
		})
	}
}

func TestLintCommandJSON(t *testing.T) {
	code, out, _ := runLintCLI(t, "Paczka waży 3.5 kg.\nMyślę że tak.", "lint", "--json")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var rep lintReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not one JSON report: %v\n%s", err, out)
	}
	if rep.File != "<stdin>" || rep.Words != 7 || len(rep.Findings) != 2 {
		t.Fatalf("report %+v: want <stdin>, 7 words, 2 findings", rep)
	}
	f := rep.Findings[1]
	if f.Rule != "missing-comma" || f.Line != 2 || f.Col != 6 || f.Text != " że" || f.Suggestion != ", że" {
		t.Errorf("second finding %+v", f)
	}
	if want := 2000.0 / 7; rep.Per1000Words != want {
		t.Errorf("per_1000_words %v, want %v", rep.Per1000Words, want)
	}
}
