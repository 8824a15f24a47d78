#!/bin/sh
# bench/zero: per-rank peak RSS, state bytes and throughput of plain data
# parallel and ZeRO stages on 2 ranks over Gloo (see main.go). The stages
# run back to back, ROUNDS times in turn, all under one `flock LOCK`
# (default /tmp/heavy.lock) so that no other heavy process shares the
# machine meanwhile and a change of load hits every stage alike. All
# stages run with activation checkpointing (stage 3 needs it), so they keep
# the same activations. STAGES may include 3off: stage 3 with
# PLTUNE_ZERO3_PREFETCH=off. Usage: bench/zero/run.sh [STAGES] [STEPS] [SEQ] [ROUNDS]
set -eu
cd "$(dirname "$0")/../.."
STAGES=${1:-"0 1 2 3"}
STEPS=${2:-3}
SEQ=${3:-128}
ROUNDS=${4:-1}
LOCK=${LOCK:-/tmp/heavy.lock}
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN/pltune" ./examples/pltune
go build -o "$BIN/zero" ./bench/zero
cat >"$BIN/all.sh" <<SCRIPT
set -eu
for r in \$(seq $ROUNDS); do
	for s in $STAGES; do
		echo "== round \$r, stage \$s: 2 ranks, $STEPS timed steps, rows of $SEQ tokens (\$(nproc) cores, load \$(cut -d' ' -f1 /proc/loadavg))"
		# "3off": stage 3 without prefetching the next unit.
		pf=on; st=\$s
		if [ "\$s" = 3off ]; then pf=off; st=3; fi
		PLTUNE_ZERO3_PREFETCH=\$pf "$BIN/pltune" launch --nproc-per-node 2 --prefix=false -- "$BIN/zero" -stage "\$st" -steps $STEPS -seq $SEQ -checkpointing
	done
done
SCRIPT
flock "$LOCK" sh "$BIN/all.sh"
