package local_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pltune/pltune/corpus"
	"github.com/pltune/pltune/corpus/samples"
	"github.com/pltune/pltune/tokenize"
	"github.com/pltune/pltune/train"
)

var update = flag.Bool("update", false, "rewrite testdata/tiny-llama")

// tinyFolder is the model folder Example_pipeline starts from: a random
// two-layer Llama with a byte-level BPE trained on the Polish samples, in
// the Hugging Face layout (config.json, model.safetensors, tokenizer files,
// generation_config.json), small enough to keep in the repository.
const tinyFolder = "testdata/tiny-llama"

// TestTinyLlamaFolder checks testdata/tiny-llama opens as a model folder
// with its tokenizer; -update writes it anew.
func TestTinyLlamaFolder(t *testing.T) {
	if *update {
		writeTinyLlama(t)
	}
	p, err := train.Open(tinyFolder, train.OpenOptions{})
	if err != nil {
		t.Fatalf("%v (go test ./eval/local -run TestTinyLlamaFolder -update writes it)", err)
	}
	defer p.Drop()
	if p.Tokenizer.VocabSize() != p.Model.Config.VocabSize || len(p.StopIDs()) < 2 {
		t.Errorf("vocabulary %d vs %d, stop ids %v", p.Tokenizer.VocabSize(), p.Model.Config.VocabSize, p.StopIDs())
	}
}

func writeTinyLlama(t *testing.T) {
	ctx := context.Background()
	texts := func(yield func(string) bool) {
		for s, err := range corpus.ReadSamples(ctx, filepath.Join("..", "..", "corpus", "samples", samples.Organic), corpus.Options{}) {
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range s.Messages {
				if !yield(m.Content) {
					return
				}
			}
		}
	}
	tt, err := tokenize.TrainBPE(ctx, texts, tokenize.BPETrainOptions{VocabSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	tokDir := t.TempDir()
	if err := tt.WriteDir(tokDir); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenize.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	bos, _ := tok.TokenToID(tokenize.TrainedBOS)
	eos, _ := tok.TokenToID(tokenize.TrainedEOS)
	cfg, err := train.ParseConfig([]byte(fmt.Sprintf(`{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":%d,
		"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
		"max_position_embeddings":1024,"rms_norm_eps":1e-5,"tie_word_embeddings":true,"bos_token_id":%d,"eos_token_id":%d,
		"torch_dtype":"float32"}`, tok.VocabSize(), bos, eos)))
	if err != nil {
		t.Fatal(err)
	}
	m, err := train.NewModel(cfg, train.ModelOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Drop()
	os.RemoveAll(tinyFolder)
	p := &train.Pretrained{Model: m, Tokenizer: tok, TokenizerDir: tokDir}
	if err := p.Export(tinyFolder, train.ExportMerged); err != nil {
		t.Fatal(err)
	}
}
