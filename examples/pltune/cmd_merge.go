//go:build pltune_torch

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pltune/pltune/train"
)

func init() {
	register(&command{name: "merge", summary: "fold a LoRA adapter into its base: a full model folder, sharded as transformers saves it", run: runMerge})
}

const mergeUsage = `merge --model ADAPTER [--base DIR] --out DIR [--max-shard-size 5GB] [--dtype f32|bf16|f16]

Loads the PEFT LoRA adapter folder ADAPTER on its base (--base, else its
adapter_config.json's base_model_name_or_path), folds the adapter into the
weights (W + scale·B·A, in float32) and writes a full Hugging Face model
folder: the weights as model.safetensors, or above --max-shard-size as
model-0000X-of-0000N.safetensors with model.safetensors.index.json (as
transformers' save_pretrained does, 5GB by default), config.json,
generation_config.json (the base's settings, the end-of-turn token among the
EOS ids) and the tokenizer files. The weights are stored in the base's
torch_dtype; --dtype is the precision the base is loaded in (f32 by default;
bf16 halves the memory a large model needs). transformers, vLLM, pltune and
pltune export gguf read the result.

--model may also be a checkpoint-N folder of a --zero-stage run: the ranks'
shards are consolidated tensor by tensor into the same layout, so no
process holds the whole model; a LoRA run's adapter is then folded into its
base (--base), and a full fine-tune's frozen tensors, if any, are read from
--base.`

func runMerge(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "merge", mergeUsage)
	var mf modelFlags
	mf.register(fs, "PEFT LoRA adapter folder (required)", tokenizerHelp)
	out := fs.String("out", "", "output folder (required)")
	shard := fs.String("max-shard-size", "5GB", "largest weight file: 5GB, 500MB, 2GiB or bytes")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case mf.model == "" || *out == "":
		return usagef("--model ADAPTER and --out DIR are required")
	}
	maxShard, err := train.ParseShardSize(*shard)
	if err != nil {
		return usagef("--max-shard-size: %v", err)
	}
	if filepath.Clean(*out) == filepath.Clean(mf.model) {
		return usagef("--out must not be the adapter folder")
	}
	if train.IsZeroCheckpoint(mf.model) {
		return mergeZero(ctx, env, mf, *out, maxShard)
	}
	p, err := mf.open()
	if err != nil {
		return err
	}
	defer p.Drop()
	if p.AdapterDir == "" {
		return usagef("--model %s is a full model folder; merge takes a LoRA adapter folder (adapter_config.json)", mf.model)
	}
	if err := p.ExportWith(*out, train.ExportMerged, train.SaveOptions{MaxShardBytes: maxShard}); err != nil {
		return err
	}
	files, size, err := weightFiles(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "merged %s into %s: %s, %d weight file(s), %.1f MB\n", p.AdapterDir, p.BaseDir, *out, files, float64(size)/1e6)
	return nil
}

// mergeZero writes the Hugging Face folder of the ZeRO checkpoint
// mf.model: consolidated into a folder next to out, then renamed to out
// (a full model) or, for a LoRA run, loaded on --base and merged into out.
func mergeZero(ctx context.Context, env *cliEnv, mf modelFlags, out string, maxShard int64) error {
	if _, err := os.Stat(out); err == nil {
		return usagef("--out %s exists; merge writes a new folder", out)
	}
	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, ".merge-zero-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	opts := train.ConsolidateOptions{MaxShardBytes: maxShard, BaseDir: mf.base, TokenizerDir: mf.base}
	if st, err := os.Stat(mf.tokenizer); err == nil && st.IsDir() {
		opts.TokenizerDir = mf.tokenizer
	}
	if err := train.ConsolidateZeroCheckpoint(ctx, mf.model, tmp, opts); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(tmp, "adapter_config.json")); err == nil {
		if mf.base == "" {
			return usagef("--model %s is a LoRA run's ZeRO checkpoint: name its base model with --base", mf.model)
		}
		adapter := mf
		adapter.model = tmp
		p, err := adapter.open()
		if err != nil {
			return err
		}
		defer p.Drop()
		if err := p.ExportWith(out, train.ExportMerged, train.SaveOptions{MaxShardBytes: maxShard}); err != nil {
			return err
		}
	} else if err := os.Rename(tmp, out); err != nil {
		return err
	}
	files, size, err := weightFiles(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "consolidated the ZeRO checkpoint %s into %s: %d weight file(s), %.1f MB\n", mf.model, out, files, float64(size)/1e6)
	return nil
}

// weightFiles counts the safetensors files of dir and their bytes.
func weightFiles(dir string) (int, int64, error) {
	ms, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil {
		return 0, 0, err
	}
	var size int64
	for _, m := range ms {
		st, err := os.Stat(m)
		if err != nil {
			return 0, 0, err
		}
		size += st.Size()
	}
	return len(ms), size, nil
}
