#!/bin/sh
# bench/dist: data parallel on c10d, pltune against PyTorch on the same
# libtorch, in one run. Needs `make setup` (Gloo enabled) and Debian's
# python3-torch for the reference. Usage: bench/dist/run.sh [MB] [STEPS]
set -eu
cd "$(dirname "$0")/../.."
MB=${1:-100}
STEPS=${2:-4}
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN/pltune" ./examples/pltune
go build -o "$BIN/dist" ./bench/dist
echo "== all-reduce of $MB MB over loopback, 2 processes (machine: $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
"$BIN/pltune" launch --nproc-per-node 2 --prefix=false -- "$BIN/dist" allreduce -mb "$MB" -iters 5
# Debian's torchrun needs the fix in train/dist/testdata/torchrun.py on Python 3.11.
/usr/bin/python3 train/dist/testdata/torchrun.py --nproc_per_node 2 bench/dist/ref_allreduce.py --mb "$MB" --iters 5 2>&1 |
	grep '^PyTorch'
echo "== tiny Llama training, global batch 4 x 256 tokens (load $(cut -d' ' -f1 /proc/loadavg))"
OMP_NUM_THREADS=$(nproc) "$BIN/dist" llama -steps "$STEPS"
"$BIN/pltune" launch --nproc-per-node 2 --prefix=false -- "$BIN/dist" llama -steps "$STEPS"
