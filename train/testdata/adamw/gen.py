# Regenerates adamw.json: torch.optim.AdamW and clip_grad_norm_ on fixed
# parameters and gradients. Run with Debian's python3-torch:
#   /usr/bin/python3 train/testdata/adamw/gen.py > train/testdata/adamw/adamw.json
import json
import torch

torch.manual_seed(0)
shapes = [(3, 4), (4,)]
params = [torch.randn(s, dtype=torch.float32) for s in shapes]
p = [torch.nn.Parameter(x.clone()) for x in params]
# The second parameter is a norm weight: no weight decay.
opt = torch.optim.AdamW([{"params": [p[0]], "weight_decay": 0.1},
                         {"params": [p[1]], "weight_decay": 0.0}],
                        lr=1e-2, betas=(0.9, 0.95), eps=1e-6)
steps = []
for step in range(4):
    lr = [1e-2, 2e-2, 1.5e-2, 5e-3][step]
    for g in opt.param_groups:
        g["lr"] = lr
    grads = [torch.randn(s, dtype=torch.float32) * (step + 1) for s in shapes]
    for x, g in zip(p, grads):
        x.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_(p, max_norm=2.0)
    opt.step()
    steps.append({
        "lr": lr,
        "grads": [g.flatten().tolist() for g in grads],
        "norm": float(norm),
        "params": [x.detach().flatten().tolist() for x in p],
    })
print(json.dumps({
    "shapes": shapes, "beta1": 0.9, "beta2": 0.95, "eps": 1e-6, "weight_decay": 0.1, "max_norm": 2.0,
    "init": [x.flatten().tolist() for x in params], "steps": steps}))
