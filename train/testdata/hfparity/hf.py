# The Hugging Face side of package train's parity tests (hfparity_test.go):
# transformers builds and saves the models, computes their logits with its
# own attention (eager, fp32, CPU), PEFT makes and merges a LoRA adapter, and
# both load what pltune wrote. Run by the Go test with the reference venv's
# python (internal/scripts/pyref.sh):
#
#   hf.py make  REQUEST.json   models, adapters and reference logits
#   hf.py check REQUEST.json   logits of the checkpoints and adapters pltune wrote
#
# REQUEST.json: {"dir": folder, "batch": [[ids], ...] (equal lengths),
# "packed": [ids], "packed_positions": [positions restarting per sequence],
# "vocab": V}; for check also "checkpoints": [model folders] and "adapters":
# [[base folder, adapter folder]], all under dir. Logits go to
# <folder>/logits.safetensors (make) or <folder>/hf_logits.safetensors
# (check) as float32, keyed batch and packed (and merged_batch,
# merged_packed for PEFT's merge_and_unload). For Mixtral, make also writes
# mixtral/router.safetensors: the batch's language-modelling loss as the
# config leaves it (output_router_logits off: no router loss), and with
# output_router_logits=True the loss and its aux_loss.
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, MixtralConfig

torch.set_grad_enabled(False)


def configs(vocab):
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                  max_position_embeddings=256, tie_word_embeddings=False)
    return {
        # Llama 3.1's frequency scaling, with an original context short enough
        # that all three bands of the scaling are used by head_dim 16.
        "llama": LlamaConfig(**common, rope_theta=500000.0,
                             rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
        # head_dim 24 is not hidden/heads (16); a sliding window of 8 tokens
        # is shorter than the rows.
        "mistral": MistralConfig(**dict(common, head_dim=24), sliding_window=8, rope_theta=10000.0),
        "mixtral": MixtralConfig(**common, num_local_experts=4, num_experts_per_tok=2, rope_theta=1e6),
    }


def randomize(model, seed):
    # transformers' init leaves norms at one; draw every tensor so each
    # weight matters to the comparison.
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.05 * torch.randn(p.shape, generator=g))


def logits_of(model, req):
    batch = torch.tensor(req["batch"])
    out = {"batch": model(input_ids=batch, use_cache=False).logits}
    packed = torch.tensor([req["packed"]])
    pos = torch.tensor([req["packed_positions"]])
    # No attention mask and no cache (as in training): transformers finds the
    # packed sequences from the restarting position ids and masks across
    # them itself.
    out["packed"] = model(input_ids=packed, position_ids=pos, use_cache=False).logits
    return {k: v.float().contiguous() for k, v in out.items()}


def load(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()


def make(req):
    from peft import LoraConfig, get_peft_model

    d = req["dir"]
    for i, (name, cfg) in enumerate(configs(req["vocab"]).items()):
        cfg.architectures = [type(cfg).__name__.replace("Config", "ForCausalLM")]
        torch.manual_seed(i)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager").eval()
        randomize(model, 100 + i)
        model.save_pretrained(os.path.join(d, name))
        # The reference logits come from the saved checkpoint as users load it.
        model = load(os.path.join(d, name))
        save_file(logits_of(model, req), os.path.join(d, name, "logits.safetensors"))
        if name == "mixtral":
            batch = torch.tensor(req["batch"])
            plain = model(input_ids=batch, labels=batch, use_cache=False)
            routed = model(input_ids=batch, labels=batch, use_cache=False, output_router_logits=True)
            assert plain.aux_loss is None
            save_file({"loss_default": plain.loss.reshape(1).float(), "loss_router": routed.loss.reshape(1).float(),
                       "aux_loss": routed.aux_loss.reshape(1).float(),
                       "router_aux_loss_coef": torch.tensor([model.config.router_aux_loss_coef], dtype=torch.float32)},
                      os.path.join(d, name, "router.safetensors"))
        if name != "llama":
            continue
        lc = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM", init_lora_weights=False,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        torch.manual_seed(7)
        peft = get_peft_model(model, lc).eval()
        peft.save_pretrained(os.path.join(d, "llama-peft"))
        out = logits_of(peft, req)
        merged = peft.merge_and_unload()
        m = logits_of(merged, req)
        out["merged_batch"], out["merged_packed"] = m["batch"], m["packed"]
        save_file(out, os.path.join(d, "llama-peft", "logits.safetensors"))


def check(req):
    from peft import PeftModel

    d = req["dir"]
    for name in req["checkpoints"]:
        save_file(logits_of(load(os.path.join(d, name)), req), os.path.join(d, name, "hf_logits.safetensors"))
    for base, adapter in req["adapters"]:
        model = PeftModel.from_pretrained(load(os.path.join(d, base)), os.path.join(d, adapter)).eval()
        save_file(logits_of(model, req), os.path.join(d, adapter, "hf_logits.safetensors"))


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        request = json.load(f)
    {"make": make, "check": check}[sys.argv[1]](request)
