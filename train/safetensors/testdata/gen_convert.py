# Regenerate convert.json (PyTorch's float32 -> float16/bfloat16 rounding) with
#   /usr/bin/python3 train/safetensors/testdata/gen_convert.py
# using Debian's python3-torch. The Go tests compare their conversions to it.
import json
import struct

import torch

g = torch.Generator().manual_seed(7)
vals = [0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, 65519.99, 1e-8, 5.96e-8, 2.98e-8, 6.1e-5,
        3.0e38, -3.0e38, 1.0 / 3, float("inf"), float("-inf"), 1.00048828125, 1.0009765625,
        1.000732421875, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, 1.5 * 2.0 ** -14]
vals += (torch.randn(400, generator=g) * 10.0).tolist()
vals += (torch.randn(200, generator=g) * 1e-5).tolist()
vals += (torch.randn(200, generator=g) * 3e4).tolist()
bits = torch.tensor(
    [struct.unpack("<I", struct.pack("<f", v))[0] for v in vals], dtype=torch.int64
)
# Random bit patterns exercise every exponent, subnormals included.
bits = torch.cat([bits, torch.randint(0, 2**32, (2000,), generator=g, dtype=torch.int64)])
f32 = torch.tensor(bits.to(torch.int32).tolist(), dtype=torch.int32).view(torch.float32)
keep = ~torch.isnan(f32)
f32 = f32[keep]
rows = []
for v in f32:
    b = struct.unpack("<I", struct.pack("<f", v.item()))[0]
    f16 = v.to(torch.float16).view(torch.int16).item() & 0xFFFF
    bf16 = v.to(torch.bfloat16).view(torch.int16).item() & 0xFFFF
    rows.append([b, f16, bf16])
with open(__file__.replace("gen_convert.py", "convert.json"), "w") as f:
    json.dump({"f32_f16_bf16_bits": rows}, f, separators=(",", ":"))
