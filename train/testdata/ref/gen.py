# Reference goldens for package train's model parity tests.
#
# Regenerate with (from the repository root; Debian's python3-torch 1.13):
#   /usr/bin/python3 train/testdata/ref/gen.py
# The Go tests read the folders this writes (llama/, mistral/, mixtral/), so
# rerun it only when the test configs change, and commit the result.
#
# This is an independent PyTorch implementation of the Hugging Face decoder
# math (modeling_llama / modeling_mistral / modeling_mixtral): RMSNorm, rotary
# embeddings with the half-split rotation and Llama-3 frequency scaling,
# grouped-query attention with a causal (optionally sliding-window) mask,
# SwiGLU MLPs, Mixtral's softmax router with top-k renormalised weights and its
# load-balancing loss. It shares no code with the Go side. Padded and packed
# inputs are checked against each sequence run alone, so the goldens do not
# depend on how the Go side builds its masks.
#
# Each model is written in the Hugging Face layout (config.json +
# model.safetensors) with the safetensors format written by hand: an 8-byte
# little-endian header length, the JSON header, then the raw data.
import json
import math
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        # numpy has no bfloat16: reinterpret the bits as int16.
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None):
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs = []
    off = 0
    for name, t in tensors.items():
        b = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return x * torch.rsqrt(var + eps) * w


def inv_freq(cfg):
    hd = cfg["head_dim"]
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    rs = cfg.get("rope_scaling")
    if rs and rs["rope_type"] == "llama3":
        factor, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        lo_wave, hi_wave = old / lo, old / hi
        wave = 2 * math.pi / inv
        scaled = torch.where(wave > lo_wave, inv / factor, inv)
        smooth = (old / wave - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wave < hi_wave) * ~(wave > lo_wave)
        inv = torch.where(medium, smoothed, scaled)
    return inv


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward_one(cfg, W, ids):
    """Logits [T, V] and per-layer router logits of one unpadded sequence."""
    T = ids.shape[0]
    H, KV, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    pos = torch.arange(T).float()
    freqs = torch.outer(pos, inv_freq(cfg))
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    win = cfg.get("sliding_window")
    if win:
        i = torch.arange(T)
        causal &= (i[:, None] - i[None, :]) < win
    x = W["model.embed_tokens.weight"][ids]
    routers = []
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(T, H, hd).transpose(0, 1)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(T, KV, hd).transpose(0, 1)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(T, KV, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = H // KV
        k = k.repeat_interleave(rep, dim=0)
        v = v.repeat_interleave(rep, dim=0)
        scores = q @ k.transpose(1, 2) / math.sqrt(hd)
        scores = scores.masked_fill(~causal, float("-inf"))
        a = torch.softmax(scores, dim=-1) @ v
        a = a.transpose(0, 1).reshape(T, H * hd)
        x = x + a @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        if cfg["architectures"][0] == "MixtralForCausalLM":
            m = p + "block_sparse_moe."
            logits = h @ W[m + "gate.weight"].T
            routers.append(logits)
            probs = torch.softmax(logits, dim=-1)
            top_w, top_i = torch.topk(probs, cfg["num_experts_per_tok"], dim=-1)
            top_w = top_w / top_w.sum(-1, keepdim=True)
            out = torch.zeros_like(h)
            for t in range(T):
                for w, e in zip(top_w[t], top_i[t]):
                    e = int(e)
                    ep = m + "experts.%d." % e
                    y = torch.nn.functional.silu(h[t] @ W[ep + "w1.weight"].T) * (h[t] @ W[ep + "w3.weight"].T)
                    out[t] += w * (y @ W[ep + "w2.weight"].T)
            x = x + out
        else:
            y = torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)
            x = x + y @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return x @ head.T, routers


def aux_loss(cfg, routers):
    """Mixtral's load-balancing loss over the given per-layer router logits
    (valid tokens only), as transformers' load_balancing_loss_func."""
    E, k = cfg["num_local_experts"], cfg["num_experts_per_tok"]
    logits = torch.cat(routers, dim=0)
    probs = torch.softmax(logits, dim=-1)
    _, sel = torch.topk(probs, k, dim=-1)
    mask = torch.nn.functional.one_hot(sel, E).float()
    tokens_per_expert = mask.mean(0)
    prob_per_expert = probs.mean(0)
    return (tokens_per_expert * prob_per_expert.unsqueeze(0)).sum() * E


def init_weights(cfg, g, store_dtype):
    D, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KV, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]

    def r(*shape, std=0.15):
        return torch.randn(*shape, generator=g) * std

    def norm():
        return 1.0 + 0.2 * torch.randn(D, generator=g)

    W = {"model.embed_tokens.weight": r(V, D, std=0.5)}
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        W[p + "input_layernorm.weight"] = norm()
        W[p + "self_attn.q_proj.weight"] = r(H * hd, D)
        W[p + "self_attn.k_proj.weight"] = r(KV * hd, D)
        W[p + "self_attn.v_proj.weight"] = r(KV * hd, D)
        W[p + "self_attn.o_proj.weight"] = r(D, H * hd)
        W[p + "post_attention_layernorm.weight"] = norm()
        if cfg["architectures"][0] == "MixtralForCausalLM":
            m = p + "block_sparse_moe."
            W[m + "gate.weight"] = r(cfg["num_local_experts"], D, std=0.5)
            for e in range(cfg["num_local_experts"]):
                ep = m + "experts.%d." % e
                W[ep + "w1.weight"] = r(I, D)
                W[ep + "w2.weight"] = r(D, I)
                W[ep + "w3.weight"] = r(I, D)
        else:
            W[p + "mlp.gate_proj.weight"] = r(I, D)
            W[p + "mlp.up_proj.weight"] = r(I, D)
            W[p + "mlp.down_proj.weight"] = r(D, I)
    W["model.norm.weight"] = norm()
    if not cfg.get("tie_word_embeddings"):
        W["lm_head.weight"] = r(V, D, std=0.3)
    # The stored precision is what the model holds: compute from the
    # rounded values.
    stored = {k: v.to(store_dtype) for k, v in W.items()}
    return stored, {k: v.float() for k, v in stored.items()}


def router_margin(cfg, routers):
    """Smallest gap between the k-th and (k+1)-th routing probability: a
    tiny gap would let float noise pick a different expert."""
    k = cfg["num_experts_per_tok"]
    probs = torch.softmax(torch.cat(routers, 0), dim=-1)
    top = torch.topk(probs, k + 1, dim=-1).values
    return float((top[:, k - 1] - top[:, k]).min())


CONFIGS = {
    "llama": (
        {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": 96,
            "hidden_size": 32,
            "intermediate_size": 48,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 8,
            "max_position_embeddings": 128,
            "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
            "tie_word_embeddings": True,
            "hidden_act": "silu",
            "bos_token_id": 1,
            "eos_token_id": [2, 3],
            "torch_dtype": "bfloat16",
        },
        torch.bfloat16,
    ),
    "mistral": (
        {
            "architectures": ["MistralForCausalLM"],
            "model_type": "mistral",
            "vocab_size": 80,
            "hidden_size": 32,
            "intermediate_size": 40,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "head_dim": 12,
            "max_position_embeddings": 128,
            "rms_norm_eps": 1e-5,
            "rope_theta": 1000000.0,
            "sliding_window": 5,
            "tie_word_embeddings": False,
            "hidden_act": "silu",
            "bos_token_id": 1,
            "eos_token_id": 2,
            "torch_dtype": "float16",
        },
        torch.float16,
    ),
    "mixtral": (
        {
            "architectures": ["MixtralForCausalLM"],
            "model_type": "mixtral",
            "vocab_size": 72,
            "hidden_size": 32,
            "intermediate_size": 24,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 128,
            "rms_norm_eps": 1e-5,
            "rope_theta": 1000000.0,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "router_aux_loss_coef": 0.02,
            "output_router_logits": True,
            "tie_word_embeddings": False,
            "hidden_act": "silu",
            "bos_token_id": 1,
            "eos_token_id": 2,
            "torch_dtype": "float32",
        },
        torch.float32,
    ),
}


def main():
    torch.set_grad_enabled(False)
    for name, (cfg, store_dtype) in CONFIGS.items():
        cfg = dict(cfg)
        full = dict(cfg)
        full.setdefault("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
        V = cfg["vocab_size"]
        for seed in range(1, 50):
            g = torch.Generator().manual_seed(1000 + seed)
            stored, W = init_weights(full, g, store_dtype)
            plain = torch.randint(3, V, (2, 9), generator=g)
            # Padded batch: row 0 left-padded by 3, row 1 right-padded by 2.
            pad_lens = [(3, 6), (0, 7)]
            padded = torch.zeros(2, 9, dtype=torch.int64)
            pmask = torch.zeros(2, 9, dtype=torch.int64)
            rows = [torch.randint(3, V, (n,), generator=g) for _, n in pad_lens]
            for b, ((left, n), row) in enumerate(zip(pad_lens, rows)):
                padded[b, left:left + n] = row
                pmask[b, left:left + n] = 1
            seg_lens = [4, 3, 6]
            packed = torch.randint(3, V, (1, sum(seg_lens)), generator=g)
            segs = torch.cat([torch.full((n,), i, dtype=torch.int64) for i, n in enumerate(seg_lens)]).unsqueeze(0)
            ppos = torch.cat([torch.arange(n) for n in seg_lens]).unsqueeze(0)

            out = {"rope.inv_freq": inv_freq(full)}
            all_routers = []
            logits = []
            plain_routers = []
            for b in range(2):
                lg, rt = forward_one(full, W, plain[b])
                logits.append(lg)
                plain_routers.append(rt)
            out["plain.input_ids"] = plain
            out["plain.logits"] = torch.stack(logits)
            all_routers += plain_routers
            plog = torch.zeros(2, 9, V)
            pad_routers = []
            for b, ((left, n), row) in enumerate(zip(pad_lens, rows)):
                lg, rt = forward_one(full, W, row)
                plog[b, left:left + n] = lg
                pad_routers.append(rt)
            all_routers += pad_routers
            out["padded.input_ids"] = padded
            out["padded.attention_mask"] = pmask
            out["padded.logits"] = plog
            klog = []
            off = 0
            for n in seg_lens:
                lg, rt = forward_one(full, W, packed[0, off:off + n])
                klog.append(lg)
                all_routers.append(rt)
                off += n
            out["packed.input_ids"] = packed
            out["packed.segment_ids"] = segs
            out["packed.position_ids"] = ppos
            out["packed.logits"] = torch.cat(klog).unsqueeze(0)
            if full["architectures"][0] == "MixtralForCausalLM":
                L = full["num_hidden_layers"]
                # Across layers first, then tokens: the loss is a mean over
                # every (layer, valid token), so the order does not matter.
                def flat(rs):
                    return [torch.cat([r[l] for r in rs], 0) for l in range(L)]

                if min(router_margin(full, flat(r)) for r in [all_routers]) < 2e-3:
                    continue
                out["plain.aux_loss"] = aux_loss(full, flat(plain_routers)).reshape(())
                out["padded.aux_loss"] = aux_loss(full, flat(pad_routers)).reshape(())
            break
        else:
            raise SystemExit("no seed gave clear router margins for " + name)
        d = os.path.join(HERE, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        write_safetensors(os.path.join(d, "model.safetensors"), stored, {"format": "pt"})
        write_safetensors(os.path.join(d, "golden.safetensors"), {k: v.contiguous() for k, v in out.items()})
        print(name, "seed", seed, "logit range", float(out["plain.logits"].min()), float(out["plain.logits"].max()))


if __name__ == "__main__":
    main()
