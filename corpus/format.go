package corpus

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Format names a file layout. Each JSON layout has a Parquet twin with the
// same fields as columns, the shape of datasets exported from the Hugging
// Face hub.
type Format string

// The formats corpus reads and writes.
const (
	// FormatAuto asks the reader to detect the format (DetectFormat).
	FormatAuto Format = ""
	// PLLuMIC is the released PLLuMIC file: one JSON array of
	// {conv_id, messages: [{role, content, seq, language, type, subtype?,
	// source: [...]}]}, the system message at seq -1 (often empty) and each
	// user/assistant pair sharing a seq 0, 1, 2, ...
	PLLuMIC Format = "pllumic"
	// PLLuMICJSONL holds one PLLuMIC conversation per line, as the
	// synthetic extension (PLLuMIC-syn-ext) is distributed.
	PLLuMICJSONL Format = "pllumic-jsonl"
	// OpenAI is JSONL of {"messages": [{"role", "content"}, ...]}.
	OpenAI Format = "openai"
	// ShareGPT is JSONL of {"conversations": [{"from", "value"}, ...]} with
	// from = system, human or gpt.
	ShareGPT Format = "sharegpt"
	// Alpaca is JSONL of {"instruction", "input", "output"}: one turn, the
	// user text being the instruction and, when not empty, a blank line and
	// the input.
	Alpaca Format = "alpaca"
	// Preference is JSONL of {id, chosen: [messages], rejected: [messages],
	// chosen_rating?, rejected_rating?} as in PLLuM-Align: the prompt is the
	// common prefix of chosen and rejected, the responses their differing
	// tails. A "prompt" message list, when present, is taken as the prompt
	// and chosen/rejected as the responses alone (TRL's conversational
	// layout).
	Preference Format = "preference"
	// Triples is JSONL of {"prompt", "chosen", "rejected"} strings with an
	// optional "system": single-turn preference data.
	Triples Format = "triples"

	PLLuMICParquet    Format = "pllumic-parquet"
	OpenAIParquet     Format = "openai-parquet"
	ShareGPTParquet   Format = "sharegpt-parquet"
	AlpacaParquet     Format = "alpaca-parquet"
	PreferenceParquet Format = "preference-parquet"
	TriplesParquet    Format = "triples-parquet"
)

// Formats lists every concrete format.
var Formats = []Format{PLLuMIC, PLLuMICJSONL, OpenAI, ShareGPT, Alpaca, Preference, Triples,
	PLLuMICParquet, OpenAIParquet, ShareGPTParquet, AlpacaParquet, PreferenceParquet, TriplesParquet}

// ParseFormat returns the format named s ("auto" or "" for FormatAuto).
func ParseFormat(s string) (Format, error) {
	if s == "" || s == "auto" {
		return FormatAuto, nil
	}
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("corpus: unknown format %q; want auto or one of %s", s, strings.Join(names, ", "))
}

// IsParquet reports whether f is stored as Parquet.
func (f Format) IsParquet() bool { return strings.HasSuffix(string(f), "-parquet") }

// IsPreference reports whether f holds preference pairs rather than samples.
func (f Format) IsPreference() bool { return f.base() == Preference || f.base() == Triples }

// Parquet returns the Parquet twin of a JSON format (f itself if Parquet).
func (f Format) Parquet() Format {
	if f == FormatAuto || f.IsParquet() {
		return f
	}
	if f == PLLuMICJSONL {
		return PLLuMICParquet
	}
	return f + "-parquet"
}

// base is the JSON layout of f's records.
func (f Format) base() Format {
	if f == PLLuMICJSONL {
		return PLLuMIC
	}
	return Format(strings.TrimSuffix(string(f), "-parquet"))
}

// DetectFormat sniffs the file at path: Parquet by its magic bytes and
// columns, PLLuMIC by a leading '[', the JSONL layouts by the keys of the
// first record.
func DetectFormat(path string) (Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	var magic [4]byte
	if n, _ := io.ReadFull(f, magic[:]); n == 4 && string(magic[:]) == "PAR1" {
		st, err := f.Stat()
		if err != nil {
			return "", fmt.Errorf("corpus: %w", err)
		}
		return detectParquet(f, st.Size(), filepath.Base(path))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("corpus: %w", err)
	}
	return sniffJSON(bufio.NewReaderSize(f, 64<<10), filepath.Base(path))
}

// sniffJSON detects a JSON layout from the start of r without consuming it.
func sniffJSON(r *bufio.Reader, name string) (Format, error) {
	for skip := 0; ; skip++ {
		head, err := r.Peek(skip + 1)
		if len(head) <= skip {
			if err == nil {
				err = io.EOF
			}
			return "", fmt.Errorf("corpus: %s: cannot detect the format of an empty file: %w", name, err)
		}
		c := head[skip]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		if c == '[' {
			return PLLuMIC, nil
		}
		break
	}
	// JSONL: look at the first non-blank line, within what fits the buffer.
	head, _ := r.Peek(r.Size())
	for line := range bytes.Lines(head) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		f := formatOfKeys(line)
		if f == FormatAuto && !bytes.HasSuffix(line, []byte("\n")) {
			// A first record longer than the buffer: look for the keys.
			f = formatOfKeyNames(line)
		}
		if f != FormatAuto {
			return f, nil
		}
		break
	}
	return "", fmt.Errorf("corpus: %s: cannot detect the format: the first record has none of the keys messages, conversations, instruction, chosen; name it with --format", name)
}

// formatOfKeys names the JSONL layout whose keys the object rec holds.
func formatOfKeys(rec []byte) Format {
	var keys map[string]json.RawMessage
	if json.Unmarshal(rec, &keys) != nil {
		return FormatAuto
	}
	switch {
	case keys["conv_id"] != nil:
		return PLLuMICJSONL
	case keys["messages"] != nil:
		return OpenAI
	case keys["conversations"] != nil:
		return ShareGPT
	case keys["instruction"] != nil || keys["output"] != nil:
		return Alpaca
	case keys["chosen"] != nil:
		if v := bytes.TrimSpace(keys["chosen"]); len(v) > 0 && v[0] == '[' {
			return Preference
		}
		return Triples
	}
	return FormatAuto
}

// formatOfKeyNames guesses the layout of a record too long to decode from
// the key names its start holds.
func formatOfKeyNames(head []byte) Format {
	has := func(k string) bool {
		return bytes.Contains(head, []byte(`"`+k+`":`)) || bytes.Contains(head, []byte(`"`+k+`" :`))
	}
	switch {
	case has("conv_id"):
		return PLLuMICJSONL
	case has("messages"):
		return OpenAI
	case has("conversations"):
		return ShareGPT
	case has("instruction"):
		return Alpaca
	case has("chosen"):
		if i := bytes.Index(head, []byte(`"chosen"`)); i >= 0 {
			rest := bytes.TrimLeft(head[i+len(`"chosen"`):], " \t:")
			if len(rest) > 0 && rest[0] == '[' {
				return Preference
			}
		}
		return Triples
	}
	return FormatAuto
}
