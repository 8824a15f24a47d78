"""Reference side of eval/local's agreement test with lm-evaluation-harness.

Creates a small random Llama (transformers) with a given tokenizer, saves it
as a Hugging Face folder, and evaluates tasks on it with lm-evaluation-
harness's `hf` backend, reading the tasks' documents from local files.
Writes per-document log-likelihoods and metrics as JSON.

    python harness_agree.py SPEC.json OUT.json

SPEC: {"tokenizer_dir": ..., "model_dir": ..., "seed": 0, "add_bos_token": true,
       "tasks": [{"upstream": "belebele_pol_Latn", "file": ..., "num_fewshot": 0}
                 | {"config": {...an lm-eval task config...}, "num_fewshot": 0}]}
Upstream tasks keep lm-eval's own definition (prompt, choices, target) with
only the dataset swapped for the local file.
"""

import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402
from lm_eval import evaluator  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402
from lm_eval.tasks._yaml_loader import load_yaml  # noqa: E402


def make_model(spec):
    tok_dir, out = spec["tokenizer_dir"], spec["model_dir"]
    os.makedirs(out, exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(out, f))
    tok = transformers.AutoTokenizer.from_pretrained(out)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
        # Wide weights spread the logits, so that choices differ by far
        # more than float rounding and argmax is well defined.
        initializer_range=0.3, tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(spec.get("seed", 0))
    model = transformers.LlamaForCausalLM(cfg).to(torch.float32).eval()
    model.save_pretrained(out, safe_serialization=True)
    return out


def local_dataset(path):
    ext = os.path.splitext(path)[1].lower()
    if ext in (".tsv", ".csv"):
        kw = {"data_files": {"test": path}}
        if ext == ".tsv":
            kw["delimiter"] = "\t"
        return "csv", kw
    return "json", {"data_files": {"test": path}}


def polqa_process_docs(ds):
    # polish_polqa's process_docs as its utils.py describes it: the relevant
    # passages, each (passage, question) pair once, in file order.
    used = set()

    def keep(ex):
        k = (ex["passage_text"], ex["question"])
        if not ex["relevant"] or k in used:
            return False
        used.add(k)
        return True

    return ds.filter(keep)


PROCESS_DOCS = {"polish_polqa_reranking_multiple_choice": polqa_process_docs}


def task_configs(spec):
    tm = TaskManager()
    out = []
    for t in spec["tasks"]:
        if "upstream" in t:
            entry = tm.task_index[t["upstream"]]
            cfg = dict(load_yaml(entry.yaml_path))
            cfg.pop("dataset_name", None)
            cfg.pop("fewshot_split", None)
            cfg["test_split"] = "test"
            if cfg.get("fewshot_config", {}).get("sampler") == "first_n":
                cfg["fewshot_split"] = "test"
            name = t["upstream"]
        else:
            cfg = dict(t["config"])
            name = cfg["task"]
        cfg["dataset_path"], cfg["dataset_kwargs"] = local_dataset(t["file"])
        for k in ("training_split", "validation_split"):
            cfg.pop(k, None)
        if "fewshot_file" in t:
            # The task's training split, which its default (random) sampler
            # draws few-shot examples from.
            cfg["dataset_kwargs"]["data_files"]["train"] = t["fewshot_file"]
            cfg["training_split"] = "train"
            cfg["fewshot_split"] = "train"
        cfg["task"] = t.get("as", name)
        if isinstance(cfg.get("process_docs"), str):
            cfg["process_docs"] = PROCESS_DOCS[cfg["process_docs"]]
        for k in ("training_split", "validation_split"):
            cfg.pop(k, None)
        cfg.pop("tag", None)
        cfg.pop("group", None)
        cfg["num_fewshot"] = t.get("num_fewshot", 0)
        out.append(cfg)
    return tm, out


def main():
    spec = json.load(open(sys.argv[1]))
    model_dir = make_model(spec)
    tm, cfgs = task_configs(spec)
    res = evaluator.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype=float32"
        + ("" if spec.get("add_bos_token", True) else ",add_bos_token=False"),
        tasks=cfgs, task_manager=tm, device="cpu", batch_size=4,
        log_samples=True, bootstrap_iters=1000, random_seed=0, numpy_random_seed=0,
        torch_random_seed=0, fewshot_random_seed=1234,
    )
    out = {"lm_eval": __import__("lm_eval").__version__ if hasattr(__import__("lm_eval"), "__version__") else "", "tasks": {}}
    for name, samples in res["samples"].items():
        metrics = {k.split(",")[0]: v for k, v in res["results"][name].items() if "," in k}
        docs = []
        for s in sorted(samples, key=lambda s: s["doc_id"]):
            d = {"doc_id": s["doc_id"]}
            resps = s["resps"]
            if resps and isinstance(resps[0][0], (list, tuple)):
                d["lls"] = [r[0][0] for r in resps]
                d["context"] = s["arguments"][0][0] if isinstance(s["arguments"][0], (list, tuple)) else None
            else:
                d["generation"] = resps[0][0]
                d["filtered"] = s["filtered_resps"][0]
            for k in ("acc", "acc_norm", "exact_match"):
                if k in s:
                    d[k] = s[k]
            docs.append(d)
        out["tasks"][name] = {"metrics": metrics, "docs": docs}
    json.dump(out, open(sys.argv[2], "w"), ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
