# PyTorch eager reference for bench/trainstep: one full training step of the
# tiny Llama (forward, mean next-token cross-entropy, backward, global
# gradient-norm clipping at 1.0, torch.optim.AdamW, zero_grad) written as
# transformers' eager LlamaForCausalLM computes it. Run by
# `go run ./bench/trainstep` with the same sizes and thread count; prints
# one JSON line with the per-step times and the process's peak RSS.
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
V, D, L, H, KV, I = args["vocab"], args["hidden"], args["layers"], args["heads"], args["kv_heads"], args["mlp"]
B, T, steps, warmup = args["batch"], args["seq"], args["steps"], args["warmup"]
hd = D // H


def p(*shape):
    return torch.nn.Parameter(torch.randn(*shape) * 0.02)


def ones(n):
    return torch.nn.Parameter(torch.ones(n))


W = {"embed": p(V, D), "norm": ones(D), "head": p(V, D)}
layers = [
    {
        "in": ones(D), "post": ones(D),
        "q": p(H * hd, D), "k": p(KV * hd, D), "v": p(KV * hd, D), "o": p(D, H * hd),
        "gate": p(I, D), "up": p(I, D), "down": p(D, I),
    }
    for _ in range(L)
]
params = list(W.values()) + [t for l in layers for t in l.values()]
opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)


def rms(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


inv = 1.0 / (500000.0 ** (torch.arange(0, hd, 2).float() / hd))


def forward(ids):
    pos = torch.arange(T).float()
    f = torch.outer(pos, inv)
    emb = torch.cat((f, f), -1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]
    mask = torch.full((T, T), float("-inf")).triu(1)[None, None]
    x = F.embedding(ids, W["embed"])
    for l in layers:
        h = rms(x, l["in"])
        q = F.linear(h, l["q"]).view(B, T, H, hd).transpose(1, 2)
        k = F.linear(h, l["k"]).view(B, T, KV, hd).transpose(1, 2)
        v = F.linear(h, l["v"]).view(B, T, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k[:, :, None].expand(B, KV, H // KV, T, hd).reshape(B, H, T, hd)
        v = v[:, :, None].expand(B, KV, H // KV, T, hd).reshape(B, H, T, hd)
        s = q @ k.transpose(2, 3) / math.sqrt(hd) + mask
        a = torch.softmax(s, -1, dtype=torch.float32) @ v
        x = x + F.linear(a.transpose(1, 2).reshape(B, T, H * hd), l["o"])
        h = rms(x, l["post"])
        x = x + F.linear(F.silu(F.linear(h, l["gate"])) * F.linear(h, l["up"]), l["down"])
    return F.linear(rms(x, W["norm"]), W["head"])


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
