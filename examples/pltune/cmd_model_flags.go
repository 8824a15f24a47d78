package main

import "flag"

// modelFlags are how score, generate and eval --model name the model to
// load; the pure-Go pltune parses them too (eval) before handing the run
// to pltune-torch.
type modelFlags struct {
	model, base, tokenizer, device, dtype string
}

func (f *modelFlags) register(fs *flag.FlagSet, modelHelp, tokenizerHelp string) {
	fs.StringVar(&f.model, "model", "", modelHelp)
	fs.StringVar(&f.base, "base", "", "base model folder of a --model adapter folder (default: its adapter_config.json's base_model_name_or_path)")
	fs.StringVar(&f.tokenizer, "tokenizer", "", tokenizerHelp)
	fs.StringVar(&f.device, "device", "cpu", "cpu, cuda or cuda:N")
	fs.StringVar(&f.dtype, "dtype", "", "parameter precision: f32, bf16 or f16 (default: bf16 on cuda, f32 on cpu)")
}

const (
	modelHelp     = "Hugging Face model folder, or a PEFT LoRA adapter folder (loaded on its base)"
	tokenizerHelp = "tokenizer folder or tokenizer.json (default: the --model folder's, else its base's)"
)
