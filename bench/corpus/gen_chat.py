"""Writes N chat records (OpenAI messages JSONL, about 1 KB each) built from
the embedded sample corpus's Polish texts, with every (N/BAD)-th line broken
in one of several ways (bad JSON, unknown role, empty messages, missing
content). Usage: gen_chat.py SAMPLES_DATA_DIR OUT N BAD"""
import json, os, random, sys

data, out, n, bad = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
texts = []
for conv in json.load(open(os.path.join(data, "organic.json"))):
    for m in conv["messages"]:
        if m["content"]:
            texts.append(m["content"])
for line in open(os.path.join(data, "pretrain.jsonl")):
    texts.extend(p for p in json.loads(line)["text"].split("\n\n") if p)
rng = random.Random(1)
every = n // bad
broken = [
    lambda r: json.dumps(r, ensure_ascii=False)[:-3],
    lambda r: json.dumps({"messages": [{"role": "asistant", "content": "x"}] + r["messages"]}, ensure_ascii=False),
    lambda r: json.dumps({"messages": []}),
    lambda r: json.dumps({"messages": [{"role": "user"}, {"role": "assistant", "content": "Tak."}]}),
]
with open(out, "w") as f:
    for i in range(n):
        q = rng.choice(texts)[:300]
        a = rng.choice(texts)[:650]
        r = {"messages": [{"role": "system", "content": "Jesteś pomocnym asystentem."}, {"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        if i % every == every - 1:
            f.write(broken[(i // every) % len(broken)](r) + "\n")
        else:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
