#!/usr/bin/env bash
# Builds pltune against the machine's CUDA libtorch (PyTorch's own, found
# through python3) and runs the ~1B Llama training benchmark. About 5
# minutes on a fresh H100 machine: setup with the one-time gotch compile,
# then 12 training steps.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
if [[ -z "${LIBTORCH:-}" ]]; then
  LIBTORCH="$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
  export LIBTORCH
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
go run ./cmd/pltune-setup -no-install
go run ./bench/gpu "$@"
