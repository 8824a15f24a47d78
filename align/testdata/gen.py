# Golden values for align's reference test, computed in PyTorch the way
# TRL's trainers do: get_batch_logps shifts labels left, masks -100 and
# averages (ORPO) or sums (DPO) the gathered log-probs; the odds-ratio term
# uses log1mexp in fp32; DPO is the sigmoid loss. The NLL term is the
# per-pair mean (align's weighting; TRL's is a token mean over the batch,
# logged here as trl_nll for comparison). Run from the repository root:
#   /usr/bin/python3 align/testdata/gen.py > align/testdata/reference.json
import json
import math

import torch
import torch.nn.functional as F

torch.manual_seed(7)
P, T, V = 3, 9, 11
beta_orpo, beta_dpo = 0.1, 0.1

# Chosen rows 0..P-1, rejected rows P..2P-1: (prompt length, total length).
shapes = [(3, 9), (2, 5), (4, 7), (3, 6), (2, 9), (4, 5)]
ids = torch.randint(0, V, (2 * P, T))
labels = torch.full((2 * P, T), -100)
attn = torch.zeros(2 * P, T, dtype=torch.long)
for r, (p, n) in enumerate(shapes):
    if r >= P:  # a pair's sides share the prompt
        ids[r, :p] = ids[r - P, :p]
    ids[r, n:] = 0  # padding id
    labels[r, p:n] = ids[r, p:n]
    attn[r, :n] = 1
logits = torch.randn(2 * P, T, V) * 2
# Pair 2's chosen answer is nearly certain: its mean log-prob is about
# -1e-6, where log(1 - exp(x)) in fp32 needs log(-expm1(x)).
for t in range(shapes[2][0] - 1, shapes[2][1] - 1):
    logits[2, t, ids[2, t + 1]] = 20.0
logits.requires_grad_()


def log1mexp(x):
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def batch_logps(logits, labels, average):
    lab = labels[:, 1:].clone()
    lg = logits[:, :-1, :]
    mask = lab != -100
    lab[lab == -100] = 0
    per_token = torch.gather(lg.log_softmax(-1), 2, lab.unsqueeze(2)).squeeze(2)
    if average:
        return (per_token * mask).sum(-1) / mask.sum(-1)
    return (per_token * mask).sum(-1)


out = {"P": P, "T": T, "V": V, "ids": ids.tolist(), "labels": labels.tolist(),
       "logits": logits.detach().flatten().tolist()}

# ORPO, response-only NLL per pair.
mean = batch_logps(logits, labels, True)
lc, lr = mean[:P], mean[P:]
log_odds = (lc - lr) - (log1mexp(lc) - log1mexp(lr))
ratio = F.logsigmoid(log_odds)
nll = -lc
orpo = (nll - beta_orpo * ratio).sum()
(g,) = torch.autograd.grad(orpo, logits)
out["orpo"] = {"beta": beta_orpo, "loss_sum": orpo.item(), "log_odds": log_odds.tolist(),
               "logps_chosen": lc.tolist(), "logps_rejected": lr.tolist(), "grad": g.flatten().tolist()}

# ORPO with the prompt in the NLL (TRL's labels: every non-pad token).
full = ids.clone()
full[attn == 0] = -100
nll_rows = -batch_logps(logits, full, True)[:P]
orpo_p = (nll_rows - beta_orpo * ratio).sum()
ce = F.cross_entropy(logits[:P, :-1].reshape(-1, V), full[:P, 1:].reshape(-1), ignore_index=-100)
out["orpo_nll_on_prompt"] = {"loss_sum": orpo_p.item(), "nll": nll_rows.tolist(), "trl_nll": ce.item()}

# DPO against fixed reference log-probs.
ssum = batch_logps(logits, labels, False)
ref = torch.tensor([-20.0, -9.5, -4.0, -18.0, -30.0, -7.25])
pc, pr = ssum[:P], ssum[P:]
z = beta_dpo * ((pc - ref[:P]) - (pr - ref[P:]))
dpo = (-F.logsigmoid(z)).sum()
(g,) = torch.autograd.grad(dpo, logits)
out["dpo"] = {"beta": beta_dpo, "reference": ref.tolist(), "loss_sum": dpo.item(),
              "logps_chosen": pc.tolist(), "logps_rejected": pr.tolist(), "grad": g.flatten().tolist()}
print(json.dumps(out))
