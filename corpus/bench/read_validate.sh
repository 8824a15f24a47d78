#!/bin/sh
# Read+validate throughput on one core: package corpus (readvalidate/, with
# GOMAXPROCS=1) against Python's json.loads loop with the same checks (read_ref.py), on the
# same 100,000 samples of about 1 KB, as JSONL and as a PLLuMIC array.
# Reports CPU seconds (user+sys, so a busy shared machine does not skew
# them), samples per CPU second and the ratio. Run from the repository root:
#   sh corpus/bench/read_validate.sh [N]
set -eu
n=${1:-100000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/readvalidate" ./corpus/bench/readvalidate
python3 corpus/bench/gen.py "$n" "$dir/s.jsonl" "$dir/s.json"
cpu() { # prints the CPU seconds and the peak RSS of the command
	/usr/bin/time -f '%U %S %M' -o "$dir/t" "$@" >/dev/null
	awk '{printf "%.2f %d", $1 + $2, $3}' "$dir/t"
}
printf '%-8s %8s %10s %10s %12s %12s %6s %9s %9s\n' file bytes go_cpu_s py_cpu_s go_samp/s py_samp/s ratio go_rss_kB py_rss_kB
for f in s.jsonl s.json; do
	p=$(GOMAXPROCS=1 cpu "$dir/readvalidate" "$dir/$f")
	r=$(cpu python3 corpus/bench/read_ref.py "$dir/$f")
	echo "$p $r" | awk -v f="$f" -v b="$(stat -c %s "$dir/$f")" -v n="$n" \
		'{ printf "%-8s %8d %10.2f %10.2f %12.0f %12.0f %5.2fx %9d %9d\n", f, b / n, $1, $3, n / $1, n / $3, $3 / $1, $2, $4 }'
done
