package export

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pltune/pltune/tokenize"
)

// ollamaTemplates are ollama TEMPLATEs (Go text/template over .Messages,
// each with .Role and .Content) for the chat formats pltune's tokenizers
// use, keyed by the family ChatFormat detects. They render what the
// Hugging Face template renders for plain system/user/assistant turns
// without its begin-of-text token, which llama.cpp adds itself; template
// features beyond that (Llama-3.1's date header, tools, Qwen3's thinking
// blocks) are not carried over.
var ollamaTemplates = map[string]string{
	"llama3": `{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- if and $last (ne .Role "assistant") }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}`,
	"chatml": `{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}
{{- end }}`,
	"gemma": `{{- $system := "" }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "system" }}{{ $system = printf "%s\n\n" .Content }}
{{- else if eq .Role "user" -}}
<start_of_turn>user
{{ $system }}{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}{{ $system = "" }}
{{- else -}}
<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- end }}`,
	"mistral": `{{- $system := "" }}
{{- range $i, $_ := .Messages }}
{{- if eq .Role "system" }}{{ $system = printf "%s\n\n" .Content }}
{{- else if eq .Role "user" }}[INST] {{ $system }}{{ .Content }} [/INST]{{ $system = "" }}
{{- else }}{{ .Content }}</s>
{{- end }}
{{- end }}`,
}

// ChatFormat names the chat format of a Hugging Face chat template by the
// markers it writes: llama3, chatml, gemma or mistral; "" when none.
func ChatFormat(template string) string {
	switch {
	case strings.Contains(template, "<|start_header_id|>"):
		return "llama3"
	case strings.Contains(template, "<|im_start|>"):
		return "chatml"
	case strings.Contains(template, "<start_of_turn>"):
		return "gemma"
	case strings.Contains(template, "[INST]"):
		return "mistral"
	}
	return ""
}

// OllamaTemplate is the ollama TEMPLATE for a chat format ChatFormat names.
func OllamaTemplate(format string) (string, bool) {
	t, ok := ollamaTemplates[format]
	return t, ok
}

// Modelfile is an ollama Modelfile for the GGUF file ggufName (a path
// relative to the Modelfile) exported from the model folder modelDir:
// FROM, the TEMPLATE converted from the model's chat template, and a stop
// PARAMETER per end-of-turn/EOS token. note explains what could not be
// converted ("" when everything was).
func Modelfile(modelDir, ggufName string) (text, note string, err error) {
	tok, err := tokenize.Load(modelDir)
	if err != nil {
		return "", "", fmt.Errorf("export: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# ollama Modelfile written by pltune export gguf\nFROM %s\n", ggufName)
	src := tok.Config().ChatTemplate
	format := ChatFormat(src)
	switch tmpl, ok := ollamaTemplates[format]; {
	case src == "":
		note = "the model has no chat template; the Modelfile has no TEMPLATE (ollama sends the prompt as it is)"
	case !ok:
		note = "the chat template is not one of the formats converted to ollama's template syntax (Llama-3, ChatML, Gemma, Mistral); the Modelfile has no TEMPLATE"
	default:
		fmt.Fprintf(&b, "TEMPLATE \"\"\"%s\"\"\"\n", tmpl)
		switch format {
		case "llama3":
			if strings.Contains(src, "Cutting Knowledge Date") {
				note = "the TEMPLATE renders Llama-3 turns; the chat template's date header is not carried over"
			}
		case "chatml":
			if strings.Contains(src, "<think>") {
				note = "the TEMPLATE renders ChatML turns; the chat template's thinking blocks are not carried over"
			}
		}
	}
	for _, id := range tok.StopIDs() {
		s, _ := tok.IDToToken(id)
		fmt.Fprintf(&b, "PARAMETER stop %s\n", strconv.Quote(s))
	}
	return b.String(), note, nil
}

// WriteModelfile writes Modelfile next to the GGUF file at ggufPath and
// returns its path and Modelfile's note.
func WriteModelfile(modelDir, ggufPath string) (path, note string, err error) {
	text, note, err := Modelfile(modelDir, "./"+filepath.Base(ggufPath))
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(filepath.Dir(ggufPath), "Modelfile")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return "", "", fmt.Errorf("export: %w", err)
	}
	return path, note, nil
}
