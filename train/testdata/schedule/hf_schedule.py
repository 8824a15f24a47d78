"""Learning rates of transformers' warmup-cosine schedules, step by step.

Reads JSON cases [{"total", "warmup_ratio", "min_lr_ratio", "lr"}] from argv[1]
and prints, per case, the warmup steps TrainingArguments.get_warmup_steps
gives and the learning rate of each optimizer step as the Trainer takes it
(optimizer.step() sees the LambdaLR's current value, then scheduler.step()).
"""
import json
import sys

import torch
from transformers import TrainingArguments
from transformers.optimization import (get_cosine_schedule_with_warmup,
                                       get_cosine_with_min_lr_schedule_with_warmup)

out = []
for case in json.load(open(sys.argv[1])):
    args = TrainingArguments(output_dir="/tmp/unused", warmup_steps=case["warmup_ratio"], report_to=[])
    total = case["total"]
    warmup = args.get_warmup_steps(total)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=case["lr"])
    if case["min_lr_ratio"]:
        sched = get_cosine_with_min_lr_schedule_with_warmup(opt, warmup, total, min_lr_rate=case["min_lr_ratio"])
    else:
        sched = get_cosine_schedule_with_warmup(opt, warmup, total)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    out.append({"warmup": warmup, "lrs": lrs})
json.dump(out, sys.stdout)
