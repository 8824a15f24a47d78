package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/pltune/pltune/eval/style"
)

func init() {
	register(&command{
		name:    "lint",
		summary: "check Polish text for English calques and style errors",
		run:     runLint,
	})
}

// lintFinding is a finding located by line and column, as printed.
type lintFinding struct {
	File string `json:"file"`
	// Line and Col are 1-based; Col counts characters, not bytes.
	Line int `json:"line"`
	Col  int `json:"col"`
	style.Finding
	Text string `json:"text"`
}

// lintReport is the --json output for one input.
type lintReport struct {
	File         string        `json:"file"`
	Words        int           `json:"words"`
	Per1000Words float64       `json:"per_1000_words"`
	Findings     []lintFinding `json:"findings"`
}

func runLint(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "lint", "lint [--json] [--rules] [FILE...]\n\nChecks Polish text (FILE, or standard input without one) for English calques and\nstyle errors. Prints FILE:LINE:COL: RULE: message (suggestion); exit status 1\nwhen anything is found.")
	asJSON := fs.Bool("json", false, "print a JSON report per input (findings, word count, findings per 1,000 words)")
	listRules := fs.Bool("rules", false, "list the rules and exit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *listRules {
		for _, r := range style.Rules() {
			fmt.Fprintf(env.stdout, "%-18s %s\n", r.ID, r.Description)
		}
		return nil
	}
	type input struct {
		name string
		text string
	}
	var inputs []input
	if fs.NArg() == 0 {
		b, err := io.ReadAll(env.stdin)
		if err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
		inputs = append(inputs, input{"<stdin>", string(b)})
	}
	for _, name := range fs.Args() {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		inputs = append(inputs, input{name, string(b)})
	}
	found := 0
	enc := json.NewEncoder(env.stdout)
	enc.SetEscapeHTML(false)
	for _, in := range inputs {
		if err := ctx.Err(); err != nil {
			return err
		}
		fsx := style.Lint(in.text)
		found += len(fsx)
		located := locateFindings(in.name, in.text, fsx)
		if *asJSON {
			if err := enc.Encode(lintReport{
				File:         in.name,
				Words:        style.CountWords(in.text),
				Per1000Words: style.Per1000Words(fsx, in.text),
				Findings:     located,
			}); err != nil {
				return err
			}
			continue
		}
		for _, f := range located {
			fmt.Fprintf(env.stdout, "%s:%d:%d: %s: %s", f.File, f.Line, f.Col, f.Rule, f.Message)
			if f.Suggestion != "" {
				fmt.Fprintf(env.stdout, " (%s)", f.Suggestion)
			}
			fmt.Fprintln(env.stdout)
		}
	}
	if found > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// locateFindings turns byte offsets into lines and character columns.
func locateFindings(name, text string, fs []style.Finding) []lintFinding {
	out := make([]lintFinding, 0, len(fs))
	for _, f := range fs {
		lineStart := strings.LastIndexByte(text[:f.Start], '\n') + 1
		out = append(out, lintFinding{
			File:    name,
			Line:    1 + strings.Count(text[:f.Start], "\n"),
			Col:     1 + utf8.RuneCountInString(text[lineStart:f.Start]),
			Finding: f,
			Text:    text[f.Start:f.End],
		})
	}
	return out
}
