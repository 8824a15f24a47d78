// Package align holds preference objectives (ORPO, DPO) on the train
// package's models, optimizer, checkpoints and loop.
//
// # Data
//
// A preference pair is a prompt with a chosen and a rejected response. Pair
// files are read by corpus (corpus.ReadPairs); ranking lists and rated
// responses (Ranked, ReadRanked) become pairs here: each response against
// each worse-ranked one (PairsFromRanking), or against each one rated at
// least a margin lower (PairsFromRatings); KeepByMargin filters rated pair
// files the same way. tokenize's SFTBuilder.BuildPreference renders a pair
// with the chat template into two sequences whose labels mark the response
// tokens (IgnoreIndex elsewhere); BuildPairs does so for a whole file
// (corpus.ReadPairs or RankedPairs), counting what it leaves out, and
// LoadPairs for the data files of a run, pair files and ranked-responses
// files alike (IsRankedFile, ReadPreferences). A side with no response token has no
// defined log-probability: CheckPairs rejects such pairs, DropEmpty drops
// and counts them, and the objectives never score them as NaN.
//
// # Objectives
//
// ORPO and DPO implement train.Objective, so train.Trainer runs them with
// everything it gives language modelling: LoRA, accumulation, clipping,
// schedules, checkpoints and exact resume, metrics.jsonl. Their unit is the
// pair: a step's loss is the mean over the pairs of its whole accumulation
// window, and the metrics (rewards_chosen, rewards_rejected, reward_margin,
// reward_accuracy, logps_chosen, logps_rejected; ORPO adds log_odds,
// log_odds_ratio and nll_loss) are per-pair means. Chosen and rejected
// sequences of a micro-batch run through the model in one forward pass,
// stacked and right-padded.
//
// ORPO follows Hong et al. 2024 as TRL computes it — per-response mean
// log-probs, log-odds in fp32 with a stable log(1 − eˣ), λ (Beta) 0.1 —
// with two documented choices: the NLL term covers the response only by
// default (LLaMA-Factory's choice; ORPOConfig.NLLOnPrompt adds the prompt
// as TRL does), and it is each pair's own mean, so a long answer weighs as
// much as a short one (TRL averages over the batch's tokens).
//
// DPO is the sigmoid loss on summed response log-probs, β 0.1. Reference
// log-probs are computed once before training (DPO.ComputeReference) from
// a separate reference model or from the policy with its LoRA adapters
// switched off, and kept per pair; SaveReference and LoadReference keep them
// beside a run, tagged with the pairs' Fingerprint, so a resumed run reuses
// them. Reference.Prepare does all of it in one call: the cached values
// when they fit, else the reference folder loaded once (on the policy's
// device, in its dtype) or the policy itself, and the cache written.
//
// Precision: the model's logits are fp32; the preference math runs in fp32,
// or in fp64 when the logits are (the gradient checks use that).
package align
