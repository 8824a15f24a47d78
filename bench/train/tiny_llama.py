# The tiny Llama of pltune's CPU benchmarks in plain PyTorch, written as
# transformers' eager LlamaForCausalLM computes it (RMSNorm, rotate_half
# RoPE with theta 500,000, repeat_kv GQA, additive causal mask, fp32
# softmax, SwiGLU). Shared by bench/train/ref.py (forward + backward) and
# bench/trainstep/step.py (a full training step).
import math

import torch
import torch.nn.functional as F


def build(args):
    """Returns (params, forward) for the sizes in args; forward(ids) gives
    logits [B, T, V]."""
    V, D, L, H, KV, I = args["vocab"], args["hidden"], args["layers"], args["heads"], args["kv_heads"], args["mlp"]
    B, T = args["batch"], args["seq"]
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

    return params, forward
