// Package train holds decoder language models (Llama, Mistral, Mixtral) on
// LibTorch through gotch, Hugging Face checkpoints, LoRA, and the continual
// pre-training / SFT loop.
//
// # Models
//
// A Model is built from a Hugging Face config.json (LoadConfig, NewModel) or
// loaded from a checkpoint folder (LoadModel), and saved back in the same
// layout (Model.Save) so other tools read it. Tensor names are bound to
// Hugging Face names in one place, so NamedParameters, checkpoints and
// adapters all use the names transformers and PEFT use. Forward follows
// transformers' math (checked against an independent PyTorch implementation
// in testdata/ref): RMSNorm, rotary embeddings (with Llama-3 scaling),
// grouped-query attention, SwiGLU, Mixtral's top-k router and its
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
//
// # Training
//
// A Trainer minimises an Objective (LMObjective for CPT and SFT; package
// align adds ORPO and DPO) over a model's trainable parameters. The loop
// picks the examples of each micro-batch; the objective collates them,
// runs the model and returns the loss summed over its units (trained
// tokens, pairs), which the loop normalises over the whole accumulation
// window and all ranks.
//
// TrainerConfig is a plain struct whose zero fields take documented
// defaults (EnsureDefaults; DefaultTrainerConfig adds seed 42), so
// TrainerConfig{OutDir: dir} is a complete configuration; a negative
// WarmupRatio, MaxGradNorm or KeepLast turns warmup, clipping or pruning
// off. The learning rate follows an LRSchedule, by default WarmupCosine:
// transformers' get_cosine_schedule_with_warmup step for step (warmup of
// ceil(ratio·steps), the first step at 0), with get_cosine_with_min_lr's
// floor as MinLRRatio. The optimizer is AdamW (torch.optim.AdamW's
// arithmetic, fp32 moments and master weights), optionally sharded over a
// data-parallel group (ZeroStage); its state is freed when Run returns.
//
// A run is watched by Recorders (Init once, Record after every step, as
// gonum's optimize.Recorder): metrics.jsonl, the progress bar (Progress;
// nil draws none) and the slog lines (Logger) are recorders of rank 0,
// OnStep and TrainerConfig.Recorders run on every rank, and a recorder that
// returns ErrStop ends the run cleanly with its checkpoint and export.
//
// Run switches the model to training mode (LoRA dropout) for the steps and
// to evaluation mode for held-out losses (EvalEvery) and when it returns,
// through TrainerConfig.Model and objectives with a SetTraining method.
// Checkpoints (OutDir/checkpoint-STEP) hold parameters, optimizer state and
// the data position, so Resume continues exactly. Cancelling ctx writes a
// checkpoint; an error in a step's forward or backward pass — the
// objective's, or a libtorch failure (shape mismatch, CUDA out of memory)
// that gotch reports by log.Fatal, which Run turns into a LibtorchError —
// writes a checkpoint of the last completed step, then Run returns it; a
// non-finite loss stops before the bad update and keeps the last good
// checkpoint.
//
// An Objective written outside pltune needs only this package's public API
// and gotch's tensors: NoGrad (torch.no_grad) for reference passes and
// metrics, HostFloat64s to read values, Loss.Metrics or DeviceMetrics for
// its metrics (ExampleObjective).
//
// In data parallel (Comm, package train/dist) every rank runs the same
// loop; the ranks agree on stopping through each step's first all-reduce,
// and a rank whose step fails returns at once, so its process exits and
// the others' next collective fails within seconds (Gloo). pltune launch
// (like torchrun) stops the group when one rank exits non-zero, and a
// stopped rank still blocked in a collective on the dead peer (NCCL never
// notices) exits after dist.Options.StopGrace.
package train
