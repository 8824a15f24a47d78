#!/usr/bin/env bash
# Regenerates the tokenizer goldens in this folder from HF's Rust tokenizers
# (npm @anush008/tokenizers) on the four reference tokenizers.
# Usage: tokenize/testdata/hf/gen.sh [number-of-strings]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
bash "$here/install.sh"
node "$here/gen.mjs" "$root/.pltune/npm" "$here" "${1:-3000}"
