package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/tokenize"
)

func init() {
	register(&command{
		name:    "template",
		summary: "render conversations through a tokenizer's chat template",
		run:     runTemplate,
	})
}

const templateUsage = `template --tokenizer PATH [--generation-prompt] [--builtin NAME]

Reads one conversation per line on standard input, as a JSON array of
{"role", "content"} messages or an object {"messages": [...]} (an optional
"system" field becomes the first message), and writes the chat template's
rendering of each as one JSON string per line, exactly as Hugging Face's
apply_chat_template renders it. A line that is not a conversation, or that the
template rejects, stops the command with exit status 1.`

func runTemplate(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "template", templateUsage)
	tokPath := fs.String("tokenizer", "", "tokenizer directory or tokenizer.json (required)")
	gen := fs.Bool("generation-prompt", false, "end with the header that opens the assistant's answer")
	builtin := fs.String("builtin", "", "use a built-in template (chatml, gemma, llama3, mistral) instead of the tokenizer's")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *tokPath == "" {
		return usagef("--tokenizer is required")
	}
	tok, err := tokenize.Load(*tokPath)
	if err != nil {
		return err
	}
	var tmpl *tokenize.ChatTemplate
	if *builtin != "" {
		src, ok := tokenize.BuiltinTemplate(*builtin)
		if !ok {
			return usagef("--builtin %q: want one of %v", *builtin, tokenize.BuiltinTemplateNames())
		}
		tmpl, err = tokenize.NewChatTemplate(src, tok.Config())
	} else {
		tmpl, err = tok.ChatTemplate()
	}
	if err != nil {
		return err
	}
	return renderLines(ctx, env.stdin, env.stdout, tmpl, *gen)
}

// renderLines renders each conversation line of r to w.
func renderLines(ctx context.Context, r io.Reader, w io.Writer, tmpl *tokenize.ChatTemplate, gen bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 64<<20)
	bw := bufio.NewWriter(w)
	// What was rendered before a failing line still reaches the output.
	defer bw.Flush()
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for line := 1; sc.Scan(); line++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		msgs, err := parseConversation(text)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		out, err := tmpl.Render(msgs, gen)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading standard input: %w", err)
	}
	return bw.Flush()
}

// parseConversation reads a message array or an object holding one.
func parseConversation(b []byte) ([]corpus.Message, error) {
	var msgs []corpus.Message
	if b[0] == '[' {
		if err := json.Unmarshal(b, &msgs); err != nil {
			return nil, fmt.Errorf("not a message array: %w", err)
		}
	} else {
		var obj struct {
			System   string           `json:"system"`
			Messages []corpus.Message `json:"messages"`
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return nil, fmt.Errorf("want a JSON array of messages or an object with \"messages\": %w", err)
		}
		if obj.Messages == nil {
			return nil, errors.New(`object has no "messages"`)
		}
		if obj.System != "" {
			msgs = append(msgs, corpus.Message{Role: corpus.RoleSystem, Content: obj.System})
		}
		msgs = append(msgs, obj.Messages...)
	}
	if len(msgs) == 0 {
		return nil, errors.New("conversation has no messages")
	}
	for i, m := range msgs {
		switch m.Role {
		case corpus.RoleSystem, corpus.RoleUser, corpus.RoleAssistant:
		default:
			return nil, fmt.Errorf("message %d has role %q; want system, user or assistant", i+1, m.Role)
		}
	}
	return msgs, nil
}
