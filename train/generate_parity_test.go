package train

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pltune/pltune/internal/pyref"
	"github.com/pltune/pltune/tokenize"
)

// hfGenerated is what train/testdata/hfparity/generate.py writes.
type hfGenerated struct {
	Free    [][]int `json:"free"`
	EOS     int     `json:"eos"`
	Stopped [][]int `json:"stopped"`
}

// TestTransformersGenerateParity decodes a batch of Polish prompts of
// different lengths (left-padded) greedily with transformers' generate and
// with pltune's Generate on the same Llama, saved by transformers: the new
// token ids are the same, without a stop id and with one that ends the
// first row early while the others go on.
func TestTransformersGenerateParity(t *testing.T) {
	py := pyref.Require(t)
	dir, err := pyref.TokenizerDir("llama2")
	if err != nil {
		t.Skip(err)
	}
	tok, err := tokenize.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int{
		tok.Encode("Wczoraj w Krakowie padał deszcz, więc", true),
		tok.Encode("Źródłem błędu okazała się", true),
		tok.Encode("Proszę podać trzy przykłady polskich rzek oraz miasta, przez które", true),
		tok.Encode("Zażółć gęślą jaźń", true),
	}
	const newTokens = 16
	req := map[string]any{"dir": t.TempDir(), "vocab": tok.VocabSize(), "prompts": prompts, "max_new_tokens": newTokens, "pad": 0}
	js, _ := json.Marshal(req)
	reqPath := filepath.Join(req["dir"].(string), "request.json")
	if err := os.WriteFile(reqPath, js, 0o644); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(py, filepath.Join("testdata", "hfparity", "generate.py"), reqPath)
	c.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_VERBOSITY=error", "TQDM_DISABLE=1")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("generate.py: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(req["dir"].(string), "hf_generate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want hfGenerated
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(req["dir"].(string), ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	ctx := context.Background()
	free, err := m.Generate(ctx, prompts, GenerateOptions{MaxNewTokens: newTokens, StopIDs: []int{}})
	if err != nil {
		t.Fatal(err)
	}
	stopped, err := m.Generate(ctx, prompts, GenerateOptions{MaxNewTokens: newTokens, StopIDs: []int{want.EOS}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range prompts {
		if fmt.Sprint(free[i]) != fmt.Sprint(want.Free[i]) {
			t.Errorf("prompt %d (%d tokens): pltune %v; transformers %v", i, len(prompts[i]), free[i], want.Free[i])
		}
		if fmt.Sprint(stopped[i]) != fmt.Sprint(want.Stopped[i]) {
			t.Errorf("prompt %d, stop id %d: pltune %v; transformers %v", i, want.EOS, stopped[i], want.Stopped[i])
		}
	}
	t.Logf("transformers: %v; with stop id %d: %v", want.Free, want.EOS, want.Stopped)
	if len(want.Stopped[0]) != 2 {
		t.Errorf("the first row should stop after 2 tokens: %v", want.Stopped[0])
	}
}
