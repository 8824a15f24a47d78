"""Reads a GGUF file with gguf-py (llama.cpp's Python package) and prints, as
JSON, its metadata, tensor types, shapes and dequantized values, and gguf-py's
own Q8_0 quantization (hex) of the original values given in a JSON file."""
import json
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType
from gguf.quants import dequantize, quantize

r = GGUFReader(sys.argv[1])
kv = {name: field.contents() for name, field in r.fields.items() if not name.startswith("GGUF.")}
tensors, types, shapes = {}, {}, {}
for t in r.tensors:
    qt = GGMLQuantizationType(t.tensor_type)
    vals = dequantize(t.data, qt).astype(np.float32).reshape(-1)
    tensors[t.name] = [float(x) for x in vals]
    types[t.name] = qt.name
    shapes[t.name] = [int(x) for x in t.shape]
q8 = {}
with open(sys.argv[2]) as f:
    for name, vals in json.load(f).items():
        q8[name] = quantize(np.asarray(vals, dtype=np.float32).reshape(-1, 64), GGMLQuantizationType.Q8_0).tobytes().hex()
print(json.dumps({"kv": kv, "tensors": tensors, "types": types, "shapes": shapes, "q8_requant_hex": q8}, ensure_ascii=False))
