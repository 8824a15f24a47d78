# TRL's side of bench/trl: the same tiny Llama (transformers, eager
# attention, fp32, CPU) trained by TRL's SFTTrainer or ORPOTrainer
# (torch.optim.AdamW, clipping at 1.0) for warmup+steps optimizer steps.
# Run by `go run ./bench/trl` with the reference venv's python; prints one
# JSON line with the step times (end of one optimizer step to the end of
# the next), the tokens per step and the process's peak RSS.
import json
import sys
import tempfile
import time

import torch
from datasets import Dataset
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, TrainerCallback

job = json.loads(sys.argv[1])
torch.set_num_threads(job["threads"])
torch.manual_seed(0)


def peak_rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class Timer(TrainerCallback):
    def __init__(self):
        self.ends = []

    def on_step_end(self, args, state, control, **kw):
        self.ends.append(time.perf_counter())


cfg = LlamaConfig(vocab_size=job["vocab"], hidden_size=job["hidden"], intermediate_size=job["mlp"],
                  num_hidden_layers=job["layers"], num_attention_heads=job["heads"],
                  num_key_value_heads=job["kv_heads"], rms_norm_eps=1e-5, rope_theta=500000.0,
                  max_position_embeddings=1024, tie_word_embeddings=False)
model = LlamaForCausalLM._from_config(cfg, attn_implementation="eager", dtype=torch.float32)
tok = PreTrainedTokenizerFast.from_pretrained(job["tokenizer"])
tok.pad_token = tok.unk_token
n = job["warmup"] + job["steps"]
B = job["batch"]
timer = Timer()
common = dict(per_device_train_batch_size=B, gradient_accumulation_steps=1, learning_rate=1e-4,
              max_steps=n, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
              optim="adamw_torch", logging_steps=10_000, save_strategy="no", report_to=[], use_cpu=True,
              bf16=False, fp16=False, dataloader_num_workers=0, seed=0, disable_tqdm=True)

with tempfile.TemporaryDirectory() as out:
    if job["kind"] == "sft":
        from trl import SFTConfig, SFTTrainer

        g = torch.Generator().manual_seed(1)
        ds = Dataset.from_dict({"input_ids": torch.randint(0, job["vocab"], (B * n, job["seq"]), generator=g).tolist()})
        args = SFTConfig(output_dir=out, max_length=job["seq"], packing=False, **common)
        tr = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[timer])
        tokens = B * job["seq"]
    else:
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        ds = Dataset.from_list([{"prompt": job["prompt"], "chosen": " " + job["chosen"],
                                 "rejected": " " + job["rejected"]}] * (B * n))
        args = ORPOConfig(output_dir=out, beta=0.1, max_length=1024, **common)
        tr = ORPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[timer])
        row = tr.train_dataset[0]
        tokens = B * (len(row["chosen_input_ids"]) + len(row["rejected_input_ids"]))
    tr.train()

ends = timer.ends
times = [b - a for a, b in zip(ends[job["warmup"] - 1:], ends[job["warmup"]:])] if job["warmup"] > 0 else []
print(json.dumps({"times_s": times, "peak_rss_kb": peak_rss_kb(), "tokens_per_step": tokens}))
