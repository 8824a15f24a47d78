# The Hugging Face side of package train's generation parity test
# (generate_parity_test.go) and of bench/generate: transformers builds a
# small random Llama, saves it, and decodes a left-padded batch with its own
# generate (greedy, KV cache). Run with the reference venv's python
# (internal/scripts/pyref.sh):
#
#   generate.py REQUEST.json
#
# REQUEST.json: {"dir": folder, "vocab": V, "prompts": [[ids], ...]
# (lengths may differ), "max_new_tokens": N, "pad": pad id, "size": "tiny"
# or "small", "bench": repeats (0: none)}. It writes the model to dir and
# dir/hf_generate.json: {"free": [[new ids], ...] without a stop id,
# "eos": id, "stopped": [[new ids], ...] with eos_token_id=eos, cut before
# the first eos}; with bench > 0 also "bench_seconds": [per repeat] of the
# free run (after one warm-up) and "torch_threads".
import json
import os
import resource
import sys
import time

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

torch.set_grad_enabled(False)

SIZES = {
    "tiny": dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
    "small": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=4),
}


def make(req):
    cfg = LlamaConfig(vocab_size=req["vocab"], rms_norm_eps=1e-5, max_position_embeddings=512,
                      tie_word_embeddings=False, rope_theta=10000.0, bos_token_id=1, eos_token_id=2,
                      **SIZES[req.get("size", "tiny")])
    cfg.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager")
    g = torch.Generator().manual_seed(5)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            # A wider output layer spreads the logits, so greedy choices are
            # not near ties that rounding could flip.
            scale = 0.5 if name == "lm_head.weight" else 0.05
            p.copy_(scale * torch.randn(p.shape, generator=g))
    model.save_pretrained(req["dir"])


def batch(req):
    prompts, pad = req["prompts"], req["pad"]
    L = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (L - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (L - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask, L


def generate(model, req, eos):
    ids, mask, L = batch(req)
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=req["max_new_tokens"],
                         min_new_tokens=0, do_sample=False, num_beams=1, pad_token_id=req["pad"],
                         eos_token_id=eos, use_cache=True)
    return out[:, L:].tolist()


def cut(rows, eos):
    res = []
    for r in rows:
        res.append(r[:r.index(eos)] if eos in r else r)
    return res


def main(req):
    if req.get("threads"):
        torch.set_num_threads(req["threads"])
    res = {}
    if req.get("bench_only"):
        model = AutoModelForCausalLM.from_pretrained(req["dir"], dtype=torch.float32).eval()
    else:
        make(req)
        model = AutoModelForCausalLM.from_pretrained(req["dir"], dtype=torch.float32, attn_implementation="eager").eval()
    model.generation_config.eos_token_id = None
    if not req.get("bench_only"):
        # No stop id: every row runs max_new_tokens (an id outside the
        # vocabulary never matches).
        free = generate(model, req, req["vocab"])
        # The stop id: the first row's third token, so that row stops early.
        eos = free[0][2]
        res = {"free": free, "eos": eos, "stopped": cut(generate(model, req, eos), eos)}
    if req.get("bench", 0) > 0:
        generate(model, req, req["vocab"])
        times = []
        for _ in range(req["bench"]):
            t0 = time.perf_counter()
            generate(model, req, req["vocab"])
            times.append(time.perf_counter() - t0)
        res["bench_seconds"] = times
        res["torch_threads"] = torch.get_num_threads()
        res["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(os.path.join(req["dir"], "hf_generate.json"), "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        main(json.load(f))
