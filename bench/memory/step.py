# PyTorch eager reference for bench/memory: one training step of the tiny
# Llama (as bench/train/tiny_llama.py computes it: transformers' eager
# attention with an additive causal mask, fp32 softmax, full-vocabulary
# logits and cross-entropy), optionally with torch.utils.checkpoint around
# each decoder layer (use_reentrant=False, as transformers'
# gradient_checkpointing_enable does) and optionally with LoRA adapters on
# q/k/v/o (base frozen, fp32 adapters, PEFT's initialisation). Prints one
# JSON line: the timed step's wall and CPU time and the process's peak RSS.
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp

a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
torch.manual_seed(0)
V, D, L, H, KV, I = a["vocab"], a["hidden"], a["layers"], a["heads"], a["kv_heads"], a["mlp"]
T, r = a["seq"], a["lora_rank"]
B, hd = 1, D // H
lora = r > 0


def p(*shape):
    return torch.nn.Parameter(torch.randn(*shape) * 0.02, requires_grad=not lora)


def ones(n):
    return torch.nn.Parameter(torch.ones(n), requires_grad=not lora)


W = {"embed": p(V, D), "norm": ones(D), "head": p(V, D)}
layers = [{"in": ones(D), "post": ones(D), "q": p(H * hd, D), "k": p(KV * hd, D), "v": p(KV * hd, D),
           "o": p(D, H * hd), "gate": p(I, D), "up": p(I, D), "down": p(D, I)} for _ in range(L)]
adapters = []
if lora:
    scale = a["lora_alpha"] / r
    for l in layers:
        for n in ("q", "k", "v", "o"):
            out, inp = l[n].shape
            A = torch.nn.Parameter(torch.empty(r, inp).uniform_(-1 / math.sqrt(inp), 1 / math.sqrt(inp)))
            Bm = torch.nn.Parameter(torch.zeros(out, r))
            l[n + "_lora"] = (A, Bm)
            adapters += [A, Bm]
params = adapters if lora else list(W.values()) + [t for l in layers for t in l.values() if isinstance(t, torch.nn.Parameter)]


def proj(l, n, x):
    y = F.linear(x, l[n])
    if lora:
        A, Bm = l[n + "_lora"]
        y = y + F.linear(F.linear(x, A), Bm) * scale
    return y


def rms(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


inv = 1.0 / (500000.0 ** (torch.arange(0, hd, 2).float() / hd))
pos = torch.arange(T).float()
f = torch.outer(pos, inv)
emb = torch.cat((f, f), -1)
cos, sin = emb.cos()[None, None], emb.sin()[None, None]
mask = torch.full((T, T), float("-inf")).triu(1)[None, None]


def layer(x, l):
    h = rms(x, l["in"])
    q = proj(l, "q", h).view(B, T, H, hd).transpose(1, 2)
    k = proj(l, "k", h).view(B, T, KV, hd).transpose(1, 2)
    v = proj(l, "v", h).view(B, T, KV, hd).transpose(1, 2)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    k = k[:, :, None].expand(B, KV, H // KV, T, hd).reshape(B, H, T, hd)
    v = v[:, :, None].expand(B, KV, H // KV, T, hd).reshape(B, H, T, hd)
    s = q @ k.transpose(2, 3) / math.sqrt(hd) + mask
    att = torch.softmax(s, -1, dtype=torch.float32) @ v
    x = x + proj(l, "o", att.transpose(1, 2).reshape(B, T, H * hd))
    h = rms(x, l["post"])
    return x + F.linear(F.silu(F.linear(h, l["gate"])) * F.linear(h, l["up"]), l["down"])


def forward(ids):
    x = F.embedding(ids, W["embed"])
    if lora:
        # checkpoint needs an input that requires grad to backpropagate
        # into the adapters (transformers' enable_input_require_grads).
        x.requires_grad_(True)
    for l in layers:
        if a["checkpoint"]:
            x = cp.checkpoint(layer, x, l, use_reentrant=False)
        else:
            x = layer(x, l)
    return F.linear(rms(x, W["norm"]), W["head"])


def peak_rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)
ids = torch.randint(0, V, (B, T))
times, cpu = [], []
for i in range(a["warmup"] + 1):
    t0, c0 = time.perf_counter(), time.process_time()
    logits = forward(ids)
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    del logits
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
print(json.dumps({"step_s": times[-1], "cpu_s": cpu[-1], "peak_rss_kb": peak_rss_kb(), "threads": torch.get_num_threads()}))
