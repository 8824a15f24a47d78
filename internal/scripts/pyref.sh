#!/usr/bin/env bash
# Installs the Python reference stack the parity tests and benchmarks compare
# pltune with (PyTorch 2.11's libtorch included) into a virtual environment
# under the user cache, named by a hash of the pins, and prints its path.
# Idempotent: an environment whose pins are complete is reused as it is.
#
#   internal/scripts/pyref.sh          install if needed, print the venv path
#   internal/scripts/pyref.sh --path   print the path only (no install)
#   internal/scripts/pyref.sh --torch  print PyTorch's torch/ folder (LIBTORCH)
set -euo pipefail
py="${PLTUNE_PYTHON:-python3}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/pltune"
lock="$(dirname "${BASH_SOURCE[0]}")/pyref.txt"
key="$({ cat "$lock"; "$py" -c 'import sys;print(sys.version_info[:2])'; } | sha256sum | cut -c1-12)"
venv="$cache/pyref-$key"
case "${1:-}" in
  --path) echo "$venv"; exit 0 ;;
  --torch) echo "$venv/lib/$("$py" -c 'import sys;print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')/site-packages/torch"; exit 0 ;;
esac
if [[ -f "$venv/.complete" ]]; then
  echo "$venv"
  exit 0
fi
echo "installing the Python references into $venv (once per machine: several GB)" >&2
start=$(date +%s)
rm -rf "$venv"
mkdir -p "$cache"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir -r "$lock" >&2
echo "pyref: installed in $(( $(date +%s) - start )) s, $(du -sh "$venv" | cut -f1)" >&2
touch "$venv/.complete"
echo "$venv"
