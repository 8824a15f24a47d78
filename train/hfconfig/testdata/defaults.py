# The transformers side of TestDefaultsMatchTransformers: reads each
# config.json given (folders named on the command line) with AutoConfig, as
# from_pretrained does, and prints the values pltune also takes from it, one
# JSON object per folder, keyed by folder.
import json
import sys

from transformers import AutoConfig

out = {}
for d in sys.argv[1:]:
    c = AutoConfig.from_pretrained(d)
    rope = getattr(c, "rope_parameters", None) or {}
    theta = rope.get("rope_theta", getattr(c, "rope_theta", None))
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    out[d] = {
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": theta,
        "max_position_embeddings": c.max_position_embeddings,
        "sliding_window": getattr(c, "sliding_window", None) or 0,
        "initializer_range": c.initializer_range,
        "tie_word_embeddings": c.tie_word_embeddings,
        "num_key_value_heads": c.num_key_value_heads,
        "head_dim": head_dim,
        "num_local_experts": getattr(c, "num_local_experts", 0),
        "num_experts_per_tok": getattr(c, "num_experts_per_tok", 0),
        "router_aux_loss_coef": getattr(c, "router_aux_loss_coef", None),
        "output_router_logits": getattr(c, "output_router_logits", False),
    }
json.dump(out, sys.stdout)
