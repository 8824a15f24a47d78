# TRL's side of package tokenize's assistant-mask parity test
# (trl_mask_test.go): the token ids and assistant masks TRL's SFTTrainer
# trains on with assistant_only_loss=True — the tokenizer's chat template,
# swapped by trl.chat_template_utils.get_training_chat_template for its
# training variant with {% generation %} markers, rendered by transformers'
# apply_chat_template(return_assistant_tokens_mask=True). Run by the Go test
# with the reference venv's python (internal/scripts/pyref.sh):
#
#   masks.py REQUEST.json   prints {"<tokenizer dir>": {"template": training template
#           without its generation markers, "rows": [{"ids": [...], "mask": [...]}, ...]}}
#           or {"<tokenizer dir>": {"unsupported": reason}}
#
# REQUEST.json: {"tokenizers": [dirs with tokenizer.json and
# tokenizer_config.json], "conversations": [[{"role", "content"}, ...], ...]}.
import json
import re
import sys

from transformers import PreTrainedTokenizerFast
from trl.chat_template_utils import get_training_chat_template, has_generation_markers


def main(req):
    out = {}
    for d in req["tokenizers"]:
        tok = PreTrainedTokenizerFast.from_pretrained(d)
        try:
            tmpl = get_training_chat_template(tok) or tok.chat_template
        except Exception as e:  # TRL has no training variant of this template
            out[d] = {"unsupported": str(e)}
            continue
        if not has_generation_markers(tmpl):
            out[d] = {"unsupported": "no {% generation %} markers"}
            continue
        rows = []
        for conv in req["conversations"]:
            enc = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
                                          chat_template=tmpl)
            rows.append({"ids": list(enc["input_ids"]), "mask": list(enc["assistant_masks"])})
        # The same template with the markers as no-op blocks (their
        # whitespace control kept), for a renderer without the extension.
        plain = re.sub(r"\{%(-?)\s*generation\s*(-?)%\}", r"{%\1 if true \2%}", tmpl)
        plain = re.sub(r"\{%(-?)\s*endgeneration\s*(-?)%\}", r"{%\1 endif \2%}", plain)
        out[d] = {"template": plain, "rows": rows}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        main(json.load(f))
