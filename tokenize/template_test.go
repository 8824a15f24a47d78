package tokenize

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pltune/pltune/corpus"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

const templateDir = "testdata/templates"

// templateModel is an entry of testdata/templates/models.json: a template
// file and the special tokens transformers passes to it.
type templateModel struct {
	Template string         `json:"template"`
	Tokens   map[string]any `json:"tokens"`
}

func (m templateModel) config(t testing.TB) Config {
	t.Helper()
	str := func(k string) string { s, _ := m.Tokens[k].(string); return s }
	src, err := os.ReadFile(filepath.Join(templateDir, m.Template))
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		BOSToken:     str("bos_token"),
		EOSToken:     str("eos_token"),
		UnkToken:     str("unk_token"),
		PadToken:     str("pad_token"),
		ChatTemplate: string(src),
		Raw:          m.Tokens,
	}
}

type templateChat struct {
	Name     string           `json:"name"`
	Messages []corpus.Message `json:"messages"`
}

type templateGolden struct {
	Model               string `json:"model"`
	Chat                string `json:"chat"`
	AddGenerationPrompt bool   `json:"add_generation_prompt"`
	Output              string `json:"output"`
	Error               string `json:"error"`
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadTemplateModels(t testing.TB) map[string]templateModel {
	var models map[string]templateModel
	readJSON(t, filepath.Join(templateDir, "models.json"), &models)
	return models
}

// TestChatTemplateGoldens renders every chat of chats.json through every
// template and compares with what Python Jinja2 rendered in HF's
// environment (gen.py), byte for byte.
func TestChatTemplateGoldens(t *testing.T) {
	models := loadTemplateModels(t)
	var chats []templateChat
	readJSON(t, filepath.Join(templateDir, "chats.json"), &chats)
	byName := map[string][]corpus.Message{}
	for _, c := range chats {
		byName[c.Name] = c.Messages
	}
	var goldens []templateGolden
	readJSON(t, filepath.Join(templateDir, "golden.json"), &goldens)
	if len(goldens) != 2*len(chats)*len(models) {
		t.Fatalf("golden.json has %d cases, want %d: rerun gen.py", len(goldens), 2*len(chats)*len(models))
	}
	seen := map[string]bool{}
	for _, g := range goldens {
		name := g.Model + "/" + g.Chat
		if g.AddGenerationPrompt {
			name += "/gen"
		}
		t.Run(name, func(t *testing.T) {
			seen[g.Model] = true
			m, ok := models[g.Model]
			if !ok {
				t.Fatalf("model %q not in models.json", g.Model)
			}
			cfg := m.config(t)
			tmpl, err := NewChatTemplate(cfg.ChatTemplate, cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.Render(byName[g.Chat], g.AddGenerationPrompt)
			if g.Error != "" {
				var te *TemplateError
				if !errors.As(err, &te) {
					t.Fatalf("got %q, %v; want TemplateError %q", got, err, g.Error)
				}
				if te.Message != g.Error {
					t.Fatalf("error message %q, want %q", te.Message, g.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != g.Output {
				t.Errorf("render differs from Jinja2\n got: %q\nwant: %q", got, g.Output)
			}
		})
	}
	for _, want := range []string{"llama3_1", "qwen3", "gemma3", "builtin_mistral"} {
		if !seen[want] {
			t.Errorf("no golden for %s", want)
		}
	}
}

// TestBuiltinTemplateFiles keeps the builtin_*.jinja files that gen.py
// renders equal to the built-in templates; -update rewrites them.
func TestBuiltinTemplateFiles(t *testing.T) {
	for _, name := range BuiltinTemplateNames() {
		src, ok := BuiltinTemplate(name)
		if !ok {
			t.Fatalf("BuiltinTemplate(%q) missing", name)
		}
		path := filepath.Join(templateDir, "builtin_"+name+".jinja")
		if *update {
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != src {
			t.Errorf("%s differs from BuiltinTemplate(%q): run go test -run TestBuiltinTemplateFiles -update, then gen.py", path, name)
		}
	}
	if _, ok := BuiltinTemplate("nonexistent"); ok {
		t.Error("BuiltinTemplate(nonexistent) reported ok")
	}
}

func TestChatTemplateErrors(t *testing.T) {
	tests := []struct {
		name, src string
		vars      map[string]any
		want      string
	}{
		{"syntax", "{% for m in messages %}{{ m.content }", nil, "tokenize: chat template"},
		{"raise", "{{ raise_exception('Nie wolno: ' + messages[0].role) }}", nil, `raised: Nie wolno: user`},
		{"empty", "", nil, "empty"},
	}
	msgs := []corpus.Message{{Role: corpus.RoleUser, Content: "Cześć"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := NewChatTemplate(tt.src, Config{})
			if err == nil {
				_, err = tmpl.RenderWith(msgs, RenderOptions{Vars: tt.vars})
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestRenderWithVars(t *testing.T) {
	models := loadTemplateModels(t)
	cfg := models["qwen3"].config(t)
	tmpl, err := NewChatTemplate(cfg.ChatTemplate, cfg)
	if err != nil {
		t.Fatal(err)
	}
	msgs := []corpus.Message{{Role: corpus.RoleUser, Content: "Cześć"}}
	got, err := tmpl.RenderWith(msgs, RenderOptions{AddGenerationPrompt: true, Vars: map[string]any{"enable_thinking": false}})
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>user\nCześć<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzChatTemplate feeds arbitrary message contents and roles through the
// real templates: rendering may fail with an error, never panic.
func FuzzChatTemplate(f *testing.F) {
	models := loadTemplateModels(f)
	var tmpls []*ChatTemplate
	for _, name := range []string{"llama3_1", "qwen3", "gemma3", "builtin_mistral"} {
		cfg := models[name].config(f)
		tmpl, err := NewChatTemplate(cfg.ChatTemplate, cfg)
		if err != nil {
			f.Fatal(err)
		}
		tmpls = append(tmpls, tmpl)
	}
	f.Add("system", "Bądź miły.", "Cześć", "<think>x</think>Hej", true)
	f.Add("user", "", "", "", false)
	f.Add("tool", "{{ x }}", "{% if %}", "</think>", true)
	f.Fuzz(func(t *testing.T, role0, c0, c1, c2 string, gen bool) {
		msgs := []corpus.Message{
			{Role: corpus.Role(role0), Content: c0},
			{Role: corpus.RoleUser, Content: c1},
			{Role: corpus.RoleAssistant, Content: c2},
		}
		for _, tmpl := range tmpls {
			out, err := tmpl.Render(msgs, gen)
			if err == nil && c2 != "" && strings.TrimSpace(c2) == c2 && !strings.Contains(c2, "</think>") && !strings.Contains(out, c2) {
				t.Errorf("rendered %q lacks the assistant content %q", out, c2)
			}
		}
	})
}

func ExampleChatTemplate_Render() {
	src, _ := BuiltinTemplate("llama3")
	tmpl, err := NewChatTemplate(src, Config{BOSToken: "<|begin_of_text|>", EOSToken: "<|eot_id|>"})
	if err != nil {
		panic(err)
	}
	out, err := tmpl.Render([]corpus.Message{
		{Role: corpus.RoleSystem, Content: "Odpowiadaj po polsku."},
		{Role: corpus.RoleUser, Content: "Jaka jest stolica Polski?"},
	}, true)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", out)
	// Output: "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nOdpowiadaj po polsku.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nJaka jest stolica Polski?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
}

func TestNamedChatTemplate(t *testing.T) {
	tj, err := trainedSmall(t).TokenizerJSON()
	if err != nil {
		t.Fatal(err)
	}
	cfg := `{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": [
		{"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"},
		{"name": "tool_use", "template": "narzędzia: {{ messages | length }}"}]}`
	tok, err := FromJSON(tj, []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	msgs := []corpus.Message{{Role: corpus.RoleUser, Content: "Cześć"}}
	for name, want := range map[string]string{"default": "<|begin_of_text|>Cześć", "tool_use": "narzędzia: 1"} {
		tmpl, err := tok.NamedChatTemplate(name)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := tmpl.Render(msgs, false); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	if tmpl, err := tok.ChatTemplate(); err != nil || tmpl.Source() != "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}" {
		t.Errorf("default template: %v", err)
	}
	if _, err := tok.NamedChatTemplate("rag"); err == nil || !strings.Contains(err.Error(), `"tool_use"`) {
		t.Errorf("missing name: err = %v", err)
	}
}

// TestBuiltinTemplateChoice checks the template picked for tokenizers whose
// config ships none: by the turn markers in the vocabulary.
func TestBuiltinTemplateChoice(t *testing.T) {
	tj, err := trainedSmall(t).TokenizerJSON()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := FromJSON(tj, []byte(`{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}`))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := tok.ChatTemplate()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := BuiltinTemplate("llama3"); tmpl.Source() != want {
		t.Errorf("picked %q, want the llama3 template", tmpl.Source())
	}

	// The same vocabulary without its special tokens fits no template.
	var doc map[string]any
	if err := json.Unmarshal(tj, &doc); err != nil {
		t.Fatal(err)
	}
	doc["added_tokens"] = []any{}
	doc["post_processor"] = nil
	bare, _ := json.Marshal(doc)
	tok, err = FromJSON(bare, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.ChatTemplate(); err == nil || !strings.Contains(err.Error(), "NewChatTemplate") {
		t.Errorf("err = %v, want advice to use NewChatTemplate", err)
	}
}

// TestTojson checks tojson as transformers defines it: json.dumps with
// ensure_ascii=False, keys in insertion order, no HTML escaping.
func TestTojson(t *testing.T) {
	tmpl, err := NewChatTemplate("{{ messages[0] | tojson }}|{{ messages | tojson(separators=(',', ':')) }}", Config{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render([]corpus.Message{{Role: corpus.RoleUser, Content: "Cześć <b>&\"x\"\n"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	// From Python: json.dumps(m, ensure_ascii=False), then with separators.
	want := `{"role": "user", "content": "Cześć <b>&\"x\"\n"}|[{"role":"user","content":"Cześć <b>&\"x\"\n"}]`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
