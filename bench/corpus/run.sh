#!/usr/bin/env bash
# `pltune corpus validate` against a bare Python loop (json.loads per line,
# validating nothing) on the same file, whole process each: 300,000 chat
# records in OpenAI messages JSONL (the embedded sample corpus's Polish
# texts) with 3,000 broken lines. Also the pltune-torch flavour (links
# libtorch) on the same command, to show what loading libtorch costs.
# The sides alternate for ROUNDS rounds; the best wall time of each counts.
# Usage: bench/corpus/run.sh [RECORDS] [BAD] [ROUNDS]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
n="${1:-300000}"
bad="${2:-3000}"
rounds="${3:-5}"
work="${BENCH_DIR:-/tmp/pltune-bench-16}"
mkdir -p "$work"
file="$work/chat-$n.jsonl"
[ -f "$file" ] || python3 "$here/gen_chat.py" "$root/corpus/samples/data" "$file" "$n" "$bad"
(cd "$root" && go build -o "$work/pltune" ./examples/pltune && go build -tags pltune_torch -o "$work/pltune-torch" ./examples/pltune)
echo "file: $(wc -c < "$file") bytes, $(wc -l < "$file") lines; $(nproc) cores; load $(cut -d' ' -f1 /proc/loadavg)"
t() { /usr/bin/time -f "%e %U %S %M" "$@" >/dev/null 2>"$work/time.err" || true; tail -1 "$work/time.err"; }
for r in $(seq "$rounds"); do
  echo "python $(t python3 "$here/loop.py" "$file")"
  echo "pltune $(t "$work/pltune" corpus validate "$file")"
  echo "pltune-torch $(t "$work/pltune-torch" corpus validate "$file")"
done > "$work/validate.txt"
python3 - "$work/validate.txt" <<'PY'
import sys
best = {}
for l in open(sys.argv[1]):
    name, wall, user, sys_, rss = l.split()
    v = (float(wall), float(user) + float(sys_), int(rss))
    if name not in best or v[0] < best[name][0]:
        best[name] = v
py = best["python"][0]
for k, (wall, cpu, rss) in best.items():
    print(f"{k:13} wall {wall:5.2f} s  cpu {cpu:5.2f} s  peak RSS {rss/1024:6.0f} MB  python/this {py/wall:4.2f}x")
PY
