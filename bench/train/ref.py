# PyTorch eager reference for bench/train: the tiny Llama of the benchmark,
# written as transformers' eager LlamaForCausalLM computes it (RMSNorm,
# rotate_half RoPE, repeat_kv GQA, additive causal mask, fp32 softmax,
# SwiGLU), timed for forward + backward. Run by `go run ./bench/train`, which
# passes the same thread count and sizes, then asks for one step at a time
# (a line on stdin) and reads each step's wall and CPU time (a JSON line).
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
B, T, warmup = args["batch"], args["seq"], args["warmup"]
hd = D // H


def p(*shape):
    return (torch.randn(*shape) * 0.02).requires_grad_()


def ones(n):
    return torch.ones(n).requires_grad_()


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
