package main

import (
	"context"
	"fmt"

	"github.com/pltune/pltune/gguf"
	"github.com/pltune/pltune/gguf/export"
	"github.com/pltune/pltune/train/hfconfig"
)

func init() {
	register(&command{
		name:    "export gguf",
		summary: "write a model folder (and a LoRA adapter) as GGUF for llama.cpp and ollama",
		run:     runExportGGUF,
	})
}

const exportGGUFUsage = `export gguf --model DIR [--adapter DIR | --base DIR] --out FILE.gguf [--type f32|f16|bf16|q8_0]

Writes the Hugging Face model folder DIR (Llama, Mistral or Mixtral, with its
tokenizer) as one GGUF file for llama.cpp, ollama and LM Studio, as llama.cpp's
convert_hf_to_gguf.py would, without Python. A PEFT LoRA adapter given with
--adapter is merged into the weights on the way; --model may be the adapter
folder itself, exported with its base (--base, else its adapter_config.json's
base_model_name_or_path). Tensors are streamed, so the
model never needs its size in memory. An ollama Modelfile (FROM, TEMPLATE from
the chat template, stop tokens) is written next to the file.`

func runExportGGUF(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "export gguf", exportGGUFUsage)
	model := fs.String("model", "", "Hugging Face model folder, or a PEFT LoRA adapter folder (required)")
	adapter := fs.String("adapter", "", "PEFT LoRA adapter folder to merge into --model")
	base := fs.String("base", "", "base model folder of a --model adapter folder (default: its adapter_config.json's base_model_name_or_path)")
	out := fs.String("out", "", "GGUF file to write (required)")
	typ := fs.String("type", "f16", "type of the weight matrices: f32, f16, bf16 or q8_0")
	name := fs.String("name", "", "general.name in the file (default: the model folder's name)")
	noModelfile := fs.Bool("no-modelfile", false, "do not write the ollama Modelfile")
	quiet := fs.Bool("quiet", false, "no progress on standard error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *model == "" || *out == "" {
		return usagef("--model and --out are required")
	}
	t, err := gguf.ParseTensorType(*typ)
	if err != nil {
		return usagef("--type: %v", err)
	}
	if hfconfig.IsAdapterDir(*model) {
		if *adapter != "" {
			return usagef("--model %s is an adapter folder already; give its base with --base, not --adapter", *model)
		}
		loc, err := hfconfig.Locate(*model, *base)
		if err != nil {
			return err
		}
		*model, *adapter = loc.ModelDir, loc.AdapterDir
	} else if *base != "" {
		return usagef("--base is for a --model adapter folder")
	}
	opts := export.Options{Type: t, AdapterDir: *adapter, Name: *name}
	if !*quiet {
		opts.Progress = func(p export.Progress) {
			fmt.Fprintf(env.stderr, "\r%d/%d tensors, %.1f MB", p.Done, p.Total, float64(p.Bytes)/1e6)
			if p.Done == p.Total {
				fmt.Fprintln(env.stderr)
			}
		}
	}
	res, err := export.Export(ctx, *model, *out, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "wrote %s: %d tensors, %s, %.1f MB, tokenizer %s", res.Path, res.Tensors, t, float64(res.Bytes)/1e6, res.Tokenizer)
	if res.Merged > 0 {
		fmt.Fprintf(env.stdout, ", LoRA merged into %d weights", res.Merged)
	}
	fmt.Fprintln(env.stdout)
	if !*noModelfile {
		path, note, err := export.WriteModelfile(*model, *out)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "wrote %s\n", path)
		if note != "" {
			fmt.Fprintf(env.stderr, "note: %s\n", note)
		}
	}
	return nil
}
