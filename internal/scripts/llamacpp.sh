#!/usr/bin/env bash
# Installs llama.cpp for the GGUF tests and benchmarks, under the user cache:
#   - node-llama-cpp (pinned): prebuilt llama.cpp libraries for linux-x64 and a
#     Node API (tokenize, evaluate with next-token probabilities, generate);
#   - llama-server built with cmake from the llama.cpp source that package
#     ships (gitRelease.bundle), portable flags (a native build crashed here
#     with an invalid opcode in its q8_0 kernels). ~15 min on 2 cores, once.
# Idempotent: completed parts are reused.
#
#   internal/scripts/llamacpp.sh            install both if needed, print paths
#   internal/scripts/llamacpp.sh --node     node-llama-cpp only (fast)
#   internal/scripts/llamacpp.sh --paths    print the paths only (no install):
#       line 1 node_modules folder, line 2 llama.cpp source, line 3 llama-server,
#       line 4 the PYTHONPATH folder with sentencepiece for its converter
set -euo pipefail
ver=3.21.1
cache="${XDG_CACHE_HOME:-$HOME/.cache}/pltune"
nlc="$cache/node-llama-cpp-$ver"
lcpp="$cache/llama.cpp-nlc$ver"
server="$lcpp/build/bin/llama-server"
if [[ "${1:-}" == --paths ]]; then
  printf '%s\n%s\n%s\n%s\n' "$nlc/node_modules" "$lcpp/src" "$server" "$lcpp/pylib"
  exit 0
fi
if [[ ! -f "$nlc/.complete" ]]; then
  echo "installing node-llama-cpp@$ver into $nlc" >&2
  mkdir -p "$nlc"
  ( cd "$nlc" && { [[ -f package.json ]] || echo '{"private":true}' > package.json; } &&
    npm install --no-audit --no-fund --save-exact "node-llama-cpp@$ver" >&2 )
  touch "$nlc/.complete"
fi
if [[ ! -d "$lcpp/src/.git" ]]; then
  mkdir -p "$lcpp"
  rm -rf "$lcpp/src"
  git clone -q "$nlc/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$lcpp/src" 2>/dev/null
fi
# llama.cpp's converter imports sentencepiece (absent from the pinned
# reference venv) even for folders without tokenizer.model: a pinned copy
# goes beside the source, for PYTHONPATH (the converter parity test).
if [[ ! -f "$lcpp/pylib/.complete" ]] && venv="$("$(dirname "${BASH_SOURCE[0]}")/pyref.sh" --path)" && [[ -x "$venv/bin/python" ]]; then
  rm -rf "$lcpp/pylib"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --target "$lcpp/pylib" sentencepiece==0.2.1 >&2 &&
    touch "$lcpp/pylib/.complete"
fi
if [[ "${1:-}" == --node ]]; then
  exit 0
fi
if [[ ! -f "$lcpp/.complete" ]]; then
  if ! command -v cmake >/dev/null; then
    echo "note: no cmake; llama-server is not built and its tests will skip" >&2
    exit 0
  fi
  echo "building llama-server in $lcpp/build (once per machine: ~15 min on 2 cores)" >&2
  start=$(date +%s)
  nice -n 15 cmake -S "$lcpp/src" -B "$lcpp/build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DBUILD_SHARED_LIBS=OFF >&2
  nice -n 15 cmake --build "$lcpp/build" --target llama-server -j "${PLTUNE_LLAMACPP_JOBS:-2}" >&2
  echo "llama.cpp: llama-server built in $(( $(date +%s) - start )) s" >&2
  touch "$lcpp/.complete"
fi
printf '%s\n%s\n%s\n%s\n' "$nlc/node_modules" "$lcpp/src" "$server" "$lcpp/pylib"
