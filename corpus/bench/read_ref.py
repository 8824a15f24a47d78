"""Reference for pltune's read+validate: the loop a Python pipeline runs,
json.loads per JSONL line (or json.load of the PLLuMIC array, which holds
the whole file in memory), with the same checks pltune makes (known roles,
system only first, user/assistant alternating from user, no empty turn,
final assistant turn)."""
import json, sys

def valid(msgs):
    if msgs and msgs[0]["role"] == "system":
        msgs = msgs[1:]
    if not msgs or msgs[-1]["role"] != "assistant":
        return False
    for i, m in enumerate(msgs):
        if m["role"] != ("user" if i % 2 == 0 else "assistant") or not m["content"].strip():
            return False
    return True

path = sys.argv[1]
ok = 0
if path.endswith(".jsonl"):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                ok += valid(json.loads(line)["messages"])
else:
    with open(path, encoding="utf-8") as f:
        for conv in json.load(f):
            ok += valid(conv["messages"])
print(ok, "valid")
