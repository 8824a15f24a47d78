package tokenize

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/internal/pyref"
)

type trlMaskResult struct {
	Unsupported string `json:"unsupported"`
	Template    string `json:"template"`
	Rows        []struct {
		IDs  []int `json:"ids"`
		Mask []int `json:"mask"`
	} `json:"rows"`
}

// TestAssistantMaskEqualsTRL: for the templates TRL can train with
// assistant_only_loss (its training variants of Llama 3's and Gemma 3's,
// with {% generation %} markers), pltune's SFT sequences rendered with the
// same template have the ids transformers' apply_chat_template gives and
// train exactly the tokens its return_assistant_tokens_mask marks — except
// one known difference of convention: TRL's Gemma 3 template also trains the
// newline after <end_of_turn>, which pltune (training the end-of-turn token,
// where generation stops) leaves out. Only a whitespace token right after a
// trained end of turn may differ so, and the test counts those.
func TestAssistantMaskEqualsTRL(t *testing.T) {
	py := pyref.Require(t)
	convs := [][]corpus.Message{
		{
			{Role: corpus.RoleUser, Content: "Jaka jest stolica Polski?"},
			{Role: corpus.RoleAssistant, Content: "Stolicą Polski jest Warszawa."},
		},
		{
			{Role: corpus.RoleSystem, Content: "Odpowiadaj krótko i po polsku."},
			{Role: corpus.RoleUser, Content: "Napisz wiersz o jesieni."},
			{Role: corpus.RoleAssistant, Content: "Liście spadają,\nżółte i czerwone —\nwiatr je zabiera. 🍂"},
			{Role: corpus.RoleUser, Content: "Dzięki! A ile to 2+2?"},
			{Role: corpus.RoleAssistant, Content: "4"},
		},
	}
	names := []string{"llama3_1", "gemma3", "qwen3"}
	var dirs []string
	for _, n := range names {
		dirs = append(dirs, testTokenizerDir(t, n))
	}
	var msgs [][]map[string]string
	for _, c := range convs {
		var m []map[string]string
		for _, x := range c {
			m = append(m, map[string]string{"role": string(x.Role), "content": x.Content})
		}
		msgs = append(msgs, m)
	}
	req, _ := json.Marshal(map[string]any{"tokenizers": dirs, "conversations": msgs})
	reqPath := filepath.Join(t.TempDir(), "request.json")
	if err := os.WriteFile(reqPath, req, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "trl", "masks.py"), reqPath)
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_VERBOSITY=error")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("masks.py: %v\n%s", err, stderr)
	}
	var res map[string]trlMaskResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	compared := 0
	for i, n := range names {
		r := res[dirs[i]]
		if r.Unsupported != "" {
			t.Logf("%s: TRL cannot mask this template (%s)", n, r.Unsupported)
			continue
		}
		tok := testTokenizer(t, n)
		tmpl, err := NewChatTemplate(r.Template, tok.Config())
		if err != nil {
			t.Fatalf("%s: TRL's training template: %v", n, err)
		}
		b, err := NewSFTBuilder(tok, SFTOptions{Template: tmpl})
		if err != nil {
			t.Fatal(err)
		}
		for j, c := range convs {
			seq, err := b.BuildMessages(c)
			if err != nil {
				t.Fatalf("%s, conversation %d: %v", n, j, err)
			}
			want := r.Rows[j]
			if !slices.Equal(seq.IDs, want.IDs) {
				t.Errorf("%s, conversation %d: ids differ from transformers'\npltune %v\nHF     %v", n, j, seq.IDs, want.IDs)
				continue
			}
			mask := make([]int, len(seq.Labels))
			for k, l := range seq.Labels {
				if l != IgnoreIndex {
					mask[k] = 1
				}
			}
			// The newline TRL trains after Gemma's end of turn.
			for k := 1; k < len(mask); k++ {
				if want.Mask[k] == 1 && mask[k] == 0 && mask[k-1] == 1 {
					if tk, _ := tok.IDToToken(seq.IDs[k]); strings.TrimSpace(tk) == "" {
						mask[k] = 1
						t.Logf("%s, conversation %d: TRL also trains %q after the end of turn (token %d)", n, j, tk, k)
					}
				}
			}
			if !slices.Equal(mask, want.Mask) {
				t.Errorf("%s, conversation %d: trained tokens differ from TRL's assistant mask\npltune %v\nTRL    %v\ntokens %q", n, j, mask, want.Mask, tokenStrings(tok, seq.IDs))
			}
			compared++
		}
	}
	if compared == 0 {
		t.Fatal("TRL masked none of the templates")
	}
}

func tokenStrings(tok *Tokenizer, ids []int) []string {
	var out []string
	for _, id := range ids {
		s, _ := tok.IDToToken(id)
		out = append(out, s)
	}
	return out
}
