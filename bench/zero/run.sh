#!/bin/sh
# bench/zero: per-rank peak RSS, state bytes and throughput of plain data
# parallel and ZeRO stages on 2 ranks over Gloo (see main.go). Each stage
# runs under `flock LOCK` (default /tmp/heavy.lock) so that no other heavy
# process shares the machine. All stages run with activation checkpointing
# (stage 3 needs it), so they keep the same activations. Usage: bench/zero/run.sh [STAGES] [STEPS] [SEQ]
set -eu
cd "$(dirname "$0")/../.."
STAGES=${1:-"0 1 2 3"}
STEPS=${2:-3}
SEQ=${3:-128}
LOCK=${LOCK:-/tmp/heavy.lock}
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN/pltune" ./examples/pltune
go build -o "$BIN/zero" ./bench/zero
for s in $STAGES; do
	echo "== stage $s: 2 ranks, $STEPS timed steps, rows of $SEQ tokens ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
	flock "$LOCK" "$BIN/pltune" launch --nproc-per-node 2 --prefix=false -- "$BIN/zero" -stage "$s" -steps "$STEPS" -seq "$SEQ" -checkpointing
done
