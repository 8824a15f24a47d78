package train

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pltune/pltune/internal/pyref"
	"github.com/pltune/pltune/tokenize"
)

// tinyBase writes a random Llama with a trained BPE tokenizer (which has
// Llama-3's <|eot_id|>) into dir, with a generation_config.json carrying
// sampling settings as a chat model's does.
func tinyBase(t *testing.T, dir string) (*Model, *tokenize.Tokenizer) {
	t.Helper()
	texts := []string{"Ala ma kota, a kot ma Alę.", "Stolicą Polski jest Warszawa.", "Wisła płynie przez Kraków."}
	tt, err := tokenize.TrainBPE(context.Background(), slices.Values(texts), tokenize.BPETrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	tokDir := filepath.Join(t.TempDir(), "tok")
	if err := tt.WriteDir(tokDir); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	eos, _ := tok.TokenToID(tokenize.TrainedEOS)
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"vocab_size":%d,"hidden_size":16,
		"intermediate_size":32,"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"eos_token_id":%d,"torch_dtype":"float32"}`, tok.VocabSize(), eos)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(cfg, ModelOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Drop)
	if err := m.Save(dir, SaveOptions{TokenizerDir: tokDir}); err != nil {
		t.Fatal(err)
	}
	gen := fmt.Sprintf(`{"do_sample": true, "temperature": 0.6, "top_p": 0.9, "eos_token_id": %d, "transformers_version": "4.57.0"}`, eos)
	if err := os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(gen), 0o644); err != nil {
		t.Fatal(err)
	}
	return m, tok
}

func tinyLogits(t *testing.T, m *Model) []float32 {
	t.Helper()
	req := &hfRequest{Batch: [][]int64{{1, 5, 9, 40, 7, 12}, {3, 80, 2, 11, 6, 200}}, Packed: []int64{4, 5, 6}, PackedPositions: []int64{0, 1, 0}, packedSegments: []int64{1, 1, 2}}
	return pltuneLogits(t, m, req)["batch"]
}

// TestOpenAdapterFolder: an adapter written by Export opens on its own,
// the base found from base_model_name_or_path (relative to the working
// directory or to the adapter folder), with the logits of the model that
// wrote it; the merged export, sharded, loads with the same logits and
// keeps the base's generation settings, adding the end-of-turn EOS.
func TestOpenAdapterFolder(t *testing.T) {
	root := t.TempDir()
	baseDir := filepath.Join(root, "base")
	_, tok := tinyBase(t, baseDir)
	base, err := Open(baseDir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer base.Drop()
	if base.AdapterDir != "" || base.BaseDir != baseDir {
		t.Errorf("full folder opened as base %q, adapter %q", base.BaseDir, base.AdapterDir)
	}
	if err := base.Export(filepath.Join(root, "x"), ExportAdapter); err == nil {
		t.Error("ExportAdapter of a model without adapters: no error")
	}
	if err := ApplyLoRA(base.Model, LoRAConfig{Rank: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj", "down_proj"}}); err != nil {
		t.Fatal(err)
	}
	perturbAdapters(base.Model)
	want := tinyLogits(t, base.Model)
	adapterDir := filepath.Join(root, "out", "sft", "final")
	if err := base.Export(adapterDir, ExportAdapter); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(adapterDir, "config.json")); err == nil {
		t.Error("the adapter folder has a config.json")
	}
	if base.Model.LoRA() == nil {
		t.Fatal("Export removed the adapters")
	}

	ad, err := Open(adapterDir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Drop()
	if ad.AdapterDir != adapterDir || ad.BaseDir != baseDir || ad.TokenizerDir != adapterDir {
		t.Errorf("adapter opened as base %q, adapter %q, tokenizer %q", ad.BaseDir, ad.AdapterDir, ad.TokenizerDir)
	}
	if lc := ad.Model.LoRA(); lc == nil || lc.Rank != 4 {
		t.Fatalf("adapter config %+v", lc)
	}
	if d := relDiff(tinyLogits(t, ad.Model), want); d > 1e-6 {
		t.Errorf("adapter folder: logits differ by %.3g", d)
	}
	eot, _ := tok.TokenToID(tokenize.TrainedEOT)
	if stops := ad.StopIDs(); !slices.Contains(stops, eot) || !slices.Contains(stops, ad.Model.Config.EOSTokenIDs[0]) {
		t.Errorf("StopIDs %v lack the EOS or the end of turn %d", stops, eot)
	}
	if ad.PadID() != tok.PadID() {
		t.Errorf("PadID %d, the tokenizer's %d", ad.PadID(), tok.PadID())
	}

	// The merged model, forced into several shards.
	merged := filepath.Join(root, "merged")
	if err := ad.ExportWith(merged, ExportMerged, SaveOptions{MaxShardBytes: 8_000}); err != nil {
		t.Fatal(err)
	}
	shards, _ := filepath.Glob(filepath.Join(merged, "model-*-of-*.safetensors"))
	if len(shards) < 2 {
		t.Errorf("%d shards; want several at 8 kB", len(shards))
	}
	if _, err := os.Stat(filepath.Join(merged, "model.safetensors.index.json")); err != nil {
		t.Error(err)
	}
	mm, err := Open(merged, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Drop()
	if mm.Model.LoRA() != nil {
		t.Error("the merged model has adapters")
	}
	if d := relDiff(tinyLogits(t, mm.Model), want); d > 1e-5 {
		t.Errorf("merged, sharded: logits differ by %.3g", d)
	}
	var gen map[string]any
	b, _ := os.ReadFile(filepath.Join(merged, "generation_config.json"))
	if err := json.Unmarshal(b, &gen); err != nil {
		t.Fatal(err)
	}
	eos, _ := gen["eos_token_id"].([]any)
	if gen["temperature"] != 0.6 || gen["top_p"] != 0.9 || gen["do_sample"] != true || !slices.Contains(eos, any(float64(eot))) {
		t.Errorf("generation_config.json %s: want the base's settings and eos_token_id with %d", b, eot)
	}

	// The base moved: the relative path is looked for next to the
	// adapter, and a missing base says to pass --base.
	rel := filepath.Join(root, "rel")
	os.MkdirAll(rel, 0o755)
	relAdapter := filepath.Join(rel, "adapter")
	if err := ad.Export(relAdapter, ExportAdapter); err != nil {
		t.Fatal(err)
	}
	setBase := func(v string) {
		t.Helper()
		path := filepath.Join(relAdapter, "adapter_config.json")
		b, _ := os.ReadFile(path)
		var pc map[string]any
		json.Unmarshal(b, &pc)
		pc["base_model_name_or_path"] = v
		b, _ = json.Marshal(pc)
		os.WriteFile(path, b, 0o644)
	}
	setBase(filepath.Join("..", "..", "base"))
	p, err := Open(relAdapter, OpenOptions{})
	if err != nil {
		t.Fatalf("base relative to the adapter: %v", err)
	}
	p.Drop()
	setBase("meta-llama/Llama-3.1-8B")
	if _, err := Open(relAdapter, OpenOptions{}); err == nil || !strings.Contains(err.Error(), "--base") || !strings.Contains(err.Error(), "meta-llama/Llama-3.1-8B") {
		t.Errorf("hub name as base: %v", err)
	}
	p, err = Open(relAdapter, OpenOptions{Base: baseDir, ModelOptions: ModelOptions{DType: "bf16"}})
	if err != nil {
		t.Fatalf("--base: %v", err)
	}
	p.Drop()
	if _, err := Open(filepath.Join(root, "out"), OpenOptions{}); err == nil || !strings.Contains(err.Error(), "neither a model folder") {
		t.Errorf("a folder of neither kind: %v", err)
	}
	if _, err := Open(baseDir, OpenOptions{ModelOptions: ModelOptions{Device: "tpu"}}); err == nil || !strings.Contains(err.Error(), `device "tpu"`) {
		t.Errorf("a bad device: %v", err)
	}
}

func TestParseShardSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"5GB", 5_000_000_000}, {"500MB", 500_000_000}, {"2GiB", 2 << 30}, {"10kb", 10_000}, {"1.5GB", 1_500_000_000}, {"123", 123}, {" 64 MiB ", 64 << 20}} {
		got, err := ParseShardSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("%q: %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "GB", "-5GB", "0", "5XB", "5 G B"} {
		if _, err := ParseShardSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestMergedShardsInTransformers: PEFT's adapter opened by train.Open on
// its base and exported merged, in several shards, loads in transformers
// with the logits of PEFT's merge_and_unload; the adapter exported again
// loads in PEFT with the adapter's logits.
func TestMergedShardsInTransformers(t *testing.T) {
	py := pyref.Require(t)
	req := polishRequest(t)
	runHF(t, py, "make", req)
	tokDir, _ := pyref.TokenizerDir("llama2")
	p, err := Open(filepath.Join(req.Dir, "llama-peft"), OpenOptions{Base: filepath.Join(req.Dir, "llama"), Tokenizer: tokDir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Drop()
	peft := readLogits(t, filepath.Join(req.Dir, "llama-peft", "logits.safetensors"))
	if err := p.ExportWith(filepath.Join(req.Dir, "merged"), ExportMerged, SaveOptions{MaxShardBytes: 100_000}); err != nil {
		t.Fatal(err)
	}
	shards, _ := filepath.Glob(filepath.Join(req.Dir, "merged", "model-*-of-*.safetensors"))
	if len(shards) < 2 {
		t.Fatalf("%d shards; want several at 100 kB", len(shards))
	}
	if err := p.Export(filepath.Join(req.Dir, "adapter-again"), ExportAdapter); err != nil {
		t.Fatal(err)
	}
	req.Checkpoints = []string{"merged"}
	req.Adapters = [][2]string{{"llama", "adapter-again"}}
	runHF(t, py, "check", req)
	got := readLogits(t, filepath.Join(req.Dir, "merged", "hf_logits.safetensors"))
	compareLogits(t, "merged shards in transformers vs merge_and_unload", hfLogits{"merged_batch": got["batch"], "merged_packed": got["packed"]}, peft, "merged_batch", "merged_packed")
	compareLogits(t, "re-exported adapter in PEFT", readLogits(t, filepath.Join(req.Dir, "adapter-again", "hf_logits.safetensors")), peft, "batch", "packed")
	m, err := LoadModel(filepath.Join(req.Dir, "merged"), ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	compareLogits(t, "merged shards in pltune vs PEFT's adapter", pltuneLogits(t, m, req), peft, "batch", "packed")
}
