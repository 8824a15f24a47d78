package tokenize

import (
	"errors"
	"fmt"
	"sort"

	"github.com/ardanlabs/jinja"

	"github.com/pltune/pltune/corpus"
)

// ChatTemplate is a compiled Jinja chat template bound to the special tokens
// of its tokenizer. It renders a conversation to the exact string Hugging Face
// transformers' apply_chat_template produces: the same Jinja semantics
// (trim_blocks, lstrip_blocks), the same globals (raise_exception,
// strftime_now), tojson without key sorting or HTML escaping, and the
// tokenizer's special tokens (bos_token, eos_token, unk_token, pad_token,
// additional_special_tokens) as variables. Tools and documents are passed as
// none. A ChatTemplate is safe for concurrent use.
type ChatTemplate struct {
	src  string
	tmpl *jinja.Template
	vars map[string]jinja.Value
}

// TemplateError is an error the template itself raised through
// raise_exception, such as Mistral's "Conversation roles must alternate".
type TemplateError struct {
	Message string
}

func (e *TemplateError) Error() string {
	return "tokenize: chat template raised: " + e.Message
}

// RenderOptions are the per-call settings of RenderWith.
type RenderOptions struct {
	// AddGenerationPrompt appends the header that opens an assistant turn.
	AddGenerationPrompt bool
	// Vars are extra template variables, e.g. "enable_thinking": false for
	// Qwen3. They override the special-token variables of the same name.
	Vars map[string]any
}

// NewChatTemplate compiles src, the chat_template of a tokenizer_config.json,
// with the special tokens of cfg as its variables.
func NewChatTemplate(src string, cfg Config) (*ChatTemplate, error) {
	if src == "" {
		return nil, errors.New("tokenize: chat template is empty")
	}
	tmpl, err := jinja.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("tokenize: chat template: %w", err)
	}
	vars := map[string]jinja.Value{
		"tools":           jinja.None(),
		"documents":       jinja.None(),
		"raise_exception": jinja.NewCallable("raise_exception", raiseException),
	}
	for name, tok := range map[string]string{
		"bos_token": cfg.BOSToken,
		"eos_token": cfg.EOSToken,
		"unk_token": cfg.UnkToken,
		"pad_token": cfg.PadToken,
	} {
		// transformers' special_tokens_map leaves out unset tokens, so
		// templates see them as undefined rather than as "".
		if tok != "" {
			vars[name] = jinja.NewString(tok)
		}
	}
	if extra := additionalSpecialTokens(cfg.Raw); len(extra) > 0 {
		items := make([]jinja.Value, len(extra))
		for i, s := range extra {
			items[i] = jinja.NewString(s)
		}
		vars["additional_special_tokens"] = jinja.NewList(items)
	}
	return &ChatTemplate{src: src, tmpl: tmpl, vars: vars}, nil
}

// additionalSpecialTokens reads additional_special_tokens from a raw
// tokenizer_config.json, where entries are strings or AddedToken objects.
func additionalSpecialTokens(raw map[string]any) []string {
	list, _ := raw["additional_special_tokens"].([]any)
	var out []string
	for _, v := range list {
		switch t := v.(type) {
		case string:
			out = append(out, t)
		case map[string]any:
			if s, ok := t["content"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func raiseException(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	msg := "raise_exception called without a message"
	switch {
	case len(args) > 0 && args[0].IsString():
		msg = args[0].AsString()
	case len(args) > 0:
		msg = args[0].String()
	}
	return jinja.Undefined(), &TemplateError{Message: msg}
}

// Source returns the template's Jinja source.
func (t *ChatTemplate) Source() string { return t.src }

// Render renders msgs, with a generation prompt at the end when
// addGenerationPrompt is set. An error raised by the template is a
// *TemplateError.
func (t *ChatTemplate) Render(msgs []corpus.Message, addGenerationPrompt bool) (string, error) {
	return t.RenderWith(msgs, RenderOptions{AddGenerationPrompt: addGenerationPrompt})
}

// RenderWith renders msgs with extra options.
func (t *ChatTemplate) RenderWith(msgs []corpus.Message, opts RenderOptions) (string, error) {
	data := make(map[string]jinja.Value, len(t.vars)+len(opts.Vars)+2)
	for k, v := range t.vars {
		data[k] = v
	}
	// Sorted so that a template iterating a variable's keys sees the same
	// order on every call.
	keys := make([]string, 0, len(opts.Vars))
	for k := range opts.Vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		data[k] = jinja.FromGoValue(opts.Vars[k])
	}
	data["messages"] = messagesValue(msgs)
	data["add_generation_prompt"] = jinja.NewBool(opts.AddGenerationPrompt)
	out, err := t.tmpl.RenderValues(data)
	if err != nil {
		var te *TemplateError
		if errors.As(err, &te) {
			return "", te
		}
		return "", fmt.Errorf("tokenize: chat template: %w", err)
	}
	return out, nil
}

// messagesValue builds the messages list with keys in the order role,
// content, as Python dicts keep them, so tojson of a message matches HF.
func messagesValue(msgs []corpus.Message) jinja.Value {
	items := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		d := jinja.NewDict()
		d.AsDict().Set("role", jinja.NewString(string(m.Role)))
		d.AsDict().Set("content", jinja.NewString(m.Content))
		items[i] = d
	}
	return jinja.NewList(items)
}

// ChatTemplate returns the tokenizer's chat template: the default one of its
// tokenizer_config.json, or, for a tokenizer that ships none, the built-in
// template its vocabulary calls for (see BuiltinTemplate).
func (t *Tokenizer) ChatTemplate() (*ChatTemplate, error) {
	cfg := t.Config()
	if cfg.ChatTemplate != "" {
		return NewChatTemplate(cfg.ChatTemplate, cfg)
	}
	name := t.builtinTemplateName()
	if name == "" {
		return nil, errors.New("tokenize: the tokenizer has no chat_template and its vocabulary fits none of the built-in templates; give one to NewChatTemplate")
	}
	src, _ := BuiltinTemplate(name)
	return NewChatTemplate(src, cfg)
}

// NamedChatTemplate returns the template called name in the list form of
// chat_template (e.g. "tool_use" or "rag" beside "default").
func (t *Tokenizer) NamedChatTemplate(name string) (*ChatTemplate, error) {
	cfg := t.Config()
	src, ok := cfg.ChatTemplates[name]
	if !ok {
		names := make([]string, 0, len(cfg.ChatTemplates))
		for n := range cfg.ChatTemplates {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("tokenize: the tokenizer has no chat template named %q; it has %q", name, names)
	}
	return NewChatTemplate(src, cfg)
}

// builtinTemplateName picks a built-in template by the special tokens the
// vocabulary holds: each family's turn markers are unmistakable.
func (t *Tokenizer) builtinTemplateName() string {
	has := func(toks ...string) bool {
		for _, s := range toks {
			if _, ok := t.TokenToID(s); !ok {
				return false
			}
		}
		return true
	}
	switch {
	case has("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"):
		return "llama3"
	case has("<|im_start|>", "<|im_end|>"):
		return "chatml"
	case has("<start_of_turn>", "<end_of_turn>"):
		return "gemma"
	case has("<s>", "</s>"):
		return "mistral"
	}
	return ""
}
