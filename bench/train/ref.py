# PyTorch eager reference for bench/train: the tiny Llama of the benchmark
# (tiny_llama.py), timed for forward + backward. Run by `go run ./bench/train`, which
# passes the same thread count and sizes, then asks for one step at a time
# (a line on stdin) and reads each step's wall and CPU time (a JSON line).
import json
import sys
import time

import torch

from tiny_llama import build

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
V, D, L, H, KV, I = args["vocab"], args["hidden"], args["layers"], args["heads"], args["kv_heads"], args["mlp"]
B, T, warmup = args["batch"], args["seq"], args["warmup"]
params, forward = build(args)


ids = torch.randint(0, V, (B, T))
tgt = torch.randint(0, V, (B, T))


def step():
    t0, c0 = time.perf_counter(), time.process_time()
    logits = forward(ids)
    loss = -torch.log_softmax(logits, -1).gather(2, tgt[..., None]).mean()
    loss.backward()
    for t in params:
        t.grad = None
    return time.perf_counter() - t0, time.process_time() - c0


for _ in range(warmup):
    step()
print(json.dumps({"ready": True, "threads": torch.get_num_threads()}), flush=True)
# One timed step per input line, so the caller can alternate its own steps
# with these and both sides see the same machine load.
for line in sys.stdin:
    wall, cpu = step()
    print(json.dumps({"wall_s": wall, "cpu_s": cpu}), flush=True)
