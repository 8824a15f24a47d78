"""The bare reference loop: json.loads per line, counting what fails."""
import json, sys

ok = bad = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        try:
            json.loads(line)
            ok += 1
        except ValueError:
            bad += 1
print(ok, bad)
