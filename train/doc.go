// Package train holds decoder language models (Llama, Mistral, Mixtral) on
// LibTorch through gotch, Hugging Face checkpoints, LoRA, and the continual
// pre-training / SFT loop.
//
// # Models
//
// A Model is built from a Hugging Face config.json (LoadConfig, NewModel) or
// loaded from a checkpoint folder (LoadModel), and saved back in the same
// layout (Model.Save) so other tools read it. A model is built of small
// layers with a Forward (Linear, RMSNorm, Embedding; a LoRA adapter wraps a
// Linear), each architecture in its own file (llama.go serves Llama and
// Mistral, mixtral.go Mixtral) registered under config.json's model_type.
// The layers' struct tags bind their tensors to Hugging Face names in one
// place (bind.go), so NamedParameters, checkpoints and adapters all use the
// names transformers and PEFT use. Forward follows transformers' math
// (checked against transformers itself and an independent PyTorch
// implementation in testdata/ref): RMSNorm, rotary embeddings (with
// Llama-3 scaling), grouped-query attention with Mistral's sliding window,
// SwiGLU, Mixtral's top-k router and, with output_router_logits set, its
// load-balancing loss. Packed rows (SegmentIDs) get block-diagonal causal
// attention with positions restarting per segment; padding (AttentionMask)
// is never attended to.
//
// # Memory and threads
//
// libtorch memory is not Go memory: every tensor a function returns must be
// freed with MustDrop (Output.Drop, Model.Drop, KVCache.Drop) as soon as it
// is no longer needed. libtorch's grad mode belongs to the OS thread, so
// inference helpers switch it off with internal/torchx.NoGrad, which locks
// the goroutine to its thread meanwhile; a training goroutine should call
// runtime.LockOSThread.
//
// # Inference
//
// Forward takes a KVCache for incremental decoding; Generate (greedy or
// sampled, stopping at EOS or end of turn), Score and LogLikelihoods serve
// the evaluators and the CLI; TokenLogProbs serves training objectives.
package train
