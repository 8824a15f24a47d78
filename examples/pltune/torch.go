package main

// The tensor commands (pretrain, sft, orpo, dpo, score, generate, merge, and eval
// with an in-process --model) link libtorch; the rest of pltune is pure Go.
// A program that links libtorch has the dynamic loader map it at start
// (hundreds of MB, most of a second) whatever the command, so pltune is
// built in two flavours from this one package:
//
//	go build ./examples/pltune                                     # pltune: pure Go
//	go build -tags pltune_torch -o pltune-torch ./examples/pltune  # every command
//
// The pure pltune runs a tensor command by starting pltune-torch with the
// same arguments (see torchBinary for where it looks); a pltune built with
// the tag runs everything itself. `make cli` builds both into bin/.

// torchTag is the build tag of the flavour that links libtorch.
const torchTag = "pltune_torch"

// torchCommands are the commands that need libtorch.
var torchCommands = []struct{ name, summary string }{
	{"pretrain", "continual pre-training on raw text or token stores (CPT)"},
	{"sft", "supervised fine-tuning on chat samples or chat token stores"},
	{"orpo", "preference alignment with ORPO (NLL + odds ratio, no reference model)"},
	{"dpo", "preference alignment with DPO (sigmoid loss against a reference model)"},
	{"score", "log-probability of each input text under a model"},
	{"generate", "continue each input prompt with a model"},
	{"merge", "fold a LoRA adapter into its base: a full model folder, sharded as transformers saves it"},
}
