#!/bin/sh
# bench/dist: data parallel on c10d, pltune against PyTorch on the same
# libtorch, in one run. The sides take turns for ROUNDS rounds, so a change
# in the machine's load hits both; compare medians over the rounds. Needs
# `make setup` (Gloo enabled) and Debian's python3-torch for the reference.
# Usage: bench/dist/run.sh [MB] [STEPS] [ROUNDS]
set -eu
cd "$(dirname "$0")/../.."
MB=${1:-100}
STEPS=${2:-4}
ROUNDS=${3:-3}
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN/pltune" ./examples/pltune
go build -o "$BIN/dist" ./bench/dist
load() { cut -d' ' -f1 /proc/loadavg; }
for r in $(seq "$ROUNDS"); do
	echo "== round $r: all-reduce of $MB MB over loopback, 2 processes ($(nproc) cores, load $(load))"
	"$BIN/pltune" launch --nproc-per-node 2 --prefix=false -- "$BIN/dist" allreduce -mb "$MB" -iters 5
	# Debian's torchrun needs the fix in train/dist/testdata/torchrun.py on Python 3.11.
	/usr/bin/python3 train/dist/testdata/torchrun.py --nproc_per_node 2 bench/dist/ref_allreduce.py --mb "$MB" --iters 5 2>&1 |
		grep '^PyTorch'
done
for r in $(seq "$ROUNDS"); do
	echo "== round $r: tiny Llama training, global batch 4 x 256 tokens (load $(load))"
	OMP_NUM_THREADS=$(nproc) "$BIN/dist" llama -steps "$STEPS"
	"$BIN/pltune" launch --nproc-per-node 2 --prefix=false -- "$BIN/dist" llama -steps "$STEPS"
done
