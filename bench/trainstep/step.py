# PyTorch eager reference for bench/trainstep: one full training step of the
# tiny Llama of bench/train/tiny_llama.py (forward, mean next-token
# cross-entropy, backward, global gradient-norm clipping at 1.0,
# torch.optim.AdamW, zero_grad). Run by
# `go run ./bench/trainstep` with the same sizes and thread count; prints
# one JSON line with the per-step times and the process's peak RSS.
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from tiny_llama import build  # noqa: E402

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
V, D, L, H, KV, I = args["vocab"], args["hidden"], args["layers"], args["heads"], args["kv_heads"], args["mlp"]
B, T, steps, warmup = args["batch"], args["seq"], args["steps"], args["warmup"]
params, forward = build(args)
opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)


def peak_rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


ids = torch.randint(0, V, (B, T))
times = []
for i in range(warmup + steps):
    t0 = time.perf_counter()
    logits = forward(ids)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if i >= warmup:
        times.append(time.perf_counter() - t0)
print(json.dumps({"times_s": times, "peak_rss_kb": peak_rss_kb(), "threads": torch.get_num_threads()}))
