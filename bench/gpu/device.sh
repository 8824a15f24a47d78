#!/usr/bin/env bash
# The one command run on the GPU machine (Python 3.12 with torch 2.11.0+cu130,
# no Go, no network) on the folder bench/gpu/pack.sh made here:
#
#   bash bench/gpu/device.sh .pltune/gpu
#
# It points the loader at that machine's own torch/lib and runs, each part
# under its own time limit (8½ minutes in all):
#   1. parity: CUDA vs CPU logits of a small Llama and Mixtral (fp32, bf16);
#   2. sft:    bf16 training of the ~1.1B Llama at sequence 2,048, batch 4:
#              tokens/s and MFU (peak 990 TFLOP/s);
#   3. lora:   LoRA rank 16 on a Llama-3.1-8B-shaped model (random bf16
#              weights) at 8,192 and 16,384 tokens: tokens/s;
#   4. zero3:  ZeRO stage 3 with world size 1 on CUDA against plain training;
#   5. orpo:   a short ORPO run of pltune's CLI on CUDA (20 steps, Polish pairs);
#   6. generate: batched greedy generation and scoring of the ~1.1B Llama in
#              bf16 (batches 1, 8, 32; prompts ≤256, 128 new tokens): tokens/s.
# Peak GPU memory of each part is sampled with nvidia-smi every 200 ms.
# Logs go to $OUT (the device tool brings them back), else /tmp/pltune-gpu-out.
#
# PLTUNE_GPU_DRY=cpu runs the same parts on CPU at toy sizes: the check,
# on a machine without a GPU, that the pack unpacks, loads libtorch from the
# given python's torch and runs (PYTHON selects that python).
set -uo pipefail
pack="$(cd "${1:-.pltune/gpu}" && pwd)"
out="${OUT:-/tmp/pltune-gpu-out}"
dry="${PLTUNE_GPU_DRY:-}"
py="${PYTHON:-python3}"
mkdir -p "$out"
log="$out/device.log"
: > "$log"
say() { echo "$@" | tee -a "$log"; }

torchdir="$("$py" -c 'import os, torch; print(os.path.dirname(torch.__file__))')" || { say "no torch for $py"; exit 1; }
ver="$("$py" -c 'import torch; print(torch.__version__)')"
want="$(cat "$pack/TORCH_VERSION")"
say "torch $ver at $torchdir; the pack was built against libtorch $want"
if [[ "${ver%%+*}" != "$want" ]]; then
  say "WARNING: torch $ver is not $want: rebuild the pack against it (bench/gpu/pack.sh)"
fi
export LD_LIBRARY_PATH="$torchdir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$py" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$pack/pltune-gpu.tar.gz" "$work"
bin="$work/bin"
if ! ldd "$bin/pltune-gpu" > "$out/ldd.txt" 2>&1 || grep -q "not found" "$out/ldd.txt"; then
  say "libraries missing:"; grep "not found" "$out/ldd.txt" | tee -a "$log"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee -a "$log"

# part NAME LIMIT CMD...: runs CMD under LIMIT seconds, sampling GPU memory.
part() {
  local name="$1" limit="$2"; shift 2
  say "== $name (limit ${limit} s): $*"
  local sampler=""
  if [[ -z "$dry" ]] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$out/mem-$name.csv" 2>/dev/null &
    sampler=$!
  fi
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.log" | tee -a "$log" >/dev/null
  local rc=${PIPESTATUS[0]}
  [[ -n "$sampler" ]] && kill "$sampler" 2>/dev/null
  local peak=""
  [[ -s "$out/mem-$name.csv" ]] && peak=", peak GPU memory $(sort -n "$out/mem-$name.csv" | tail -1) MiB"
  say "== $name: exit $rc after $(( SECONDS - t0 )) s$peak"
  tail -4 "$out/$name.log"
}

if [[ "$dry" == cpu ]]; then
  part parity 120 "$bin/pltune-gpu" -mode parity -cpu
  part sft 240 "$bin/pltune-gpu" -mode sft -cpu -layers 1 -seq 64 -batch 1 -steps 3
  part lora 120 "$bin/pltune-gpu" -mode lora -cpu -seqs 128,256 -steps 2
  part zero3 60 "$bin/pltune-gpu" -mode zero3 -cpu
  part orpo 240 "$bin/pltune" orpo --model-config "$pack/data/orpo-config.json" --tokenizer "$pack/data/tokenizer" \
    --data "$pack/data/preferences.jsonl" --out "$work/orpo" --device cpu --max-steps 2 --batch-size 2 --max-len 512 --quiet
  part generate 120 "$bin/pltune-gpu" -mode generate -cpu -batches 1,4 -prompt 16 -new 8
else
  part parity 60 "$bin/pltune-gpu" -mode parity
  part sft 150 "$bin/pltune-gpu" -mode sft -seq 2048 -batch 4 -steps 12 -peak-tflops 990
  part lora 150 "$bin/pltune-gpu" -mode lora -seqs 8192,16384 -steps 3 -rank 16
  part zero3 30 "$bin/pltune-gpu" -mode zero3
  part orpo 60 "$bin/pltune" orpo --model-config "$pack/data/orpo-config.json" --tokenizer "$pack/data/tokenizer" \
    --data "$pack/data/preferences.jsonl" --out "$work/orpo" --device cuda --max-steps 20 --batch-size 4 --max-len 1024 --quiet
  part generate 60 "$bin/pltune-gpu" -mode generate -batches 1,8,32 -prompt 256 -new 128
fi
if [[ -f "$work/orpo/metrics.jsonl" ]]; then
  cp "$work/orpo/metrics.jsonl" "$out/orpo-metrics.jsonl"
  say "orpo: first and last metrics:"; head -1 "$work/orpo/metrics.jsonl" | tee -a "$log"; tail -1 "$work/orpo/metrics.jsonl" | tee -a "$log"
fi
say "logs in $out"
