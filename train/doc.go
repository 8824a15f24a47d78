// Package train holds decoder language models (Llama, Mistral, Mixtral) on
// LibTorch through gotch, Hugging Face checkpoints, LoRA, and the continual
// pre-training / SFT loop.
package train
