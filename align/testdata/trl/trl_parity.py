# TRL's side of package align's parity test (trl_parity_test.go): ORPO's
# and DPO's losses, rewards and gradients from TRL's own code on the batch
# pltune computed them on. Run by the Go test with the reference venv's
# python (internal/scripts/pyref.sh):
#
#   trl_parity.py REQUEST.json OUT.safetensors
#
# REQUEST.json: {"policy": model dir, "reference": model dir, "tokenizer":
# tokenizer.json, "beta": β, "pad": pad id, "pairs": [{"prompt_len": n,
# "chosen": [ids], "rejected": [ids]}]}; the response of each side is
# everything after prompt_len. Outputs (float64 tensors):
#   orpo.<i>.loss, orpo.<i>.grad.<param>   one pair per batch (TRL's NLL is a
#                                          token mean over the whole batch,
#                                          pltune's a mean per pair: equal for one)
#   orpo.log_odds, orpo.rewards_chosen, orpo.rewards_rejected   per pair, all pairs in one batch
#   dpo.loss, dpo.grad.<param>, dpo.rewards_chosen, dpo.rewards_rejected,
#   dpo.logps_chosen, dpo.logps_rejected   all pairs in one batch (TRL's means)
import json
import sys
import tempfile
import types

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast


def load(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")


def pad(rows, value):
    n = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (n - len(r)) for r in rows])


def grads(model, prefix, out):
    for name, p in model.named_parameters():
        if p.grad is not None:
            out[f"{prefix}.grad.{name}"] = p.grad.double().clone()
    model.zero_grad(set_to_none=True)


def orpo(req, out):
    from trl.experimental.orpo import ORPOTrainer

    model = load(req["policy"]).train()
    # The ORPOTrainer methods need only these of the trainer.
    me = types.SimpleNamespace(beta=req["beta"], is_encoder_decoder=False, padding_value=req["pad"],
                               aux_loss_enabled=False, label_pad_token_id=-100,
                               accelerator=types.SimpleNamespace(device=torch.device("cpu")))
    me.concatenated_inputs = ORPOTrainer.concatenated_inputs
    me.get_batch_logps = ORPOTrainer.get_batch_logps

    def batch_of(pairs):
        b = {}
        for side in ("chosen", "rejected"):
            rows = [p[side] for p in pairs]
            labels = [[-100] * p["prompt_len"] + p[side][p["prompt_len"]:] for p in pairs]
            b[f"{side}_input_ids"] = pad(rows, req["pad"])
            b[f"{side}_attention_mask"] = pad([[1] * len(r) for r in rows], 0)
            b[f"{side}_labels"] = pad(labels, -100)
        return b

    def loss_of(pairs):
        chosen_logps, rejected_logps, _, _, nll = ORPOTrainer.concatenated_forward(me, model, batch_of(pairs))
        losses, rc, rr, _, log_odds = ORPOTrainer.odds_ratio_loss(me, chosen_logps, rejected_logps)
        # get_batch_loss_metrics' "full ORPO loss".
        return nll - losses.mean(), rc, rr, chosen_logps, rejected_logps

    for i, p in enumerate(req["pairs"]):
        loss, *_ = loss_of([p])
        loss.backward()
        out[f"orpo.{i}.loss"] = loss.detach().double().reshape(1)
        grads(model, f"orpo.{i}", out)
    with torch.no_grad():
        _, rc, rr, lc, lr = loss_of(req["pairs"])
        # odds_ratio_loss returns only the batch mean of the log-odds.
        log_odds = torch.stack([ORPOTrainer.odds_ratio_loss(me, lc[i:i + 1], lr[i:i + 1])[4] for i in range(len(lc))])
    out["orpo.rewards_chosen"], out["orpo.rewards_rejected"] = rc.double(), rr.double()
    out["orpo.log_odds"] = log_odds.double()


def dpo(req, out):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tok = PreTrainedTokenizerFast(tokenizer_file=req["tokenizer"], pad_token="<unk>", eos_token="</s>")
    policy, ref = load(req["policy"]), load(req["reference"])
    ds = Dataset.from_list([{"prompt": "a", "chosen": "b", "rejected": "c"}])
    with tempfile.TemporaryDirectory() as d:
        args = DPOConfig(output_dir=d, beta=req["beta"], report_to=[], per_device_train_batch_size=len(req["pairs"]),
                         use_cpu=True, bf16=False, fp16=False, precompute_ref_log_probs=False, dataloader_num_workers=0)
        tr = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=ds, processing_class=tok)
    pairs = req["pairs"]
    rows = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    plen = [p["prompt_len"] for p in pairs] * 2
    inputs = {
        "input_ids": pad(rows, req["pad"]),
        "attention_mask": pad([[1] * len(r) for r in rows], 0),
        "completion_mask": pad([[0] * n + [1] * (len(r) - n) for r, n in zip(rows, plen)], 0),
    }
    model = tr.model.train()
    loss = tr._compute_loss(model, inputs, return_outputs=False)
    loss.backward()
    out["dpo.loss"] = loss.detach().double().reshape(1)
    grads(model, "dpo", out)
    m = tr._metrics["train"]
    for k, name in (("rewards/chosen", "rewards_chosen"), ("rewards/rejected", "rewards_rejected"),
                    ("logps/chosen", "logps_chosen"), ("logps/rejected", "logps_rejected")):
        out[f"dpo.{name}"] = torch.tensor([m[k][-1]], dtype=torch.float64)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        request = json.load(f)
    result = {}
    orpo(request, result)
    dpo(request, result)
    save_file({k: v.contiguous() for k, v in result.items()}, sys.argv[2])
