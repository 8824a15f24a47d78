"""PyTorch eager side of train's BenchmarkAttentionMemory.

One attention layer's forward and backward with the tiny Llama's heads (8
query heads, 2 key/value heads, head_dim 32, batch 1, fp32 CPU, causal), as
transformers computes it: eager (repeat_kv, scores, additive causal mask,
softmax, matmul) and SDPA (is_causal) where the libtorch has it. Prints the
peak resident memory above the inputs (VmHWM after resetting it through
/proc/self/clear_refs, least over the runs) and the median time, in the
same way as the Go benchmark:

    /usr/bin/python3 bench/attention/ref.py            # Debian's torch 1.13
    $(internal/scripts/pyref.sh --path)/bin/python bench/attention/ref.py   # 2.11
"""
import argparse, ctypes, math, os, statistics, time
import torch
import torch.nn.functional as F

H, KV, HD = 8, 2, 32


def status_kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
    raise SystemExit(f"no {key} in /proc/self/status")


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status_kb("VmRSS:")


def repeat_kv(x, rep):
    b, kv, t, d = x.shape
    return x[:, :, None].expand(b, kv, rep, t, d).reshape(b, kv * rep, t, d)


def eager(q, k, v, mask):
    k, v = repeat_kv(k, H // KV), repeat_kv(v, H // KV)
    s = q @ k.transpose(2, 3) / math.sqrt(HD) + mask
    p = torch.softmax(s, dim=-1, dtype=torch.float32)
    return p @ v


def sdpa(q, k, v, mask):
    k, v = repeat_kv(k, H // KV), repeat_kv(v, H // KV)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="1024,4096,16384")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="as libtorch's default in the Go benchmark")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    libc = ctypes.CDLL("libc.so.6")
    paths = {"explicit": eager}
    if hasattr(F, "scaled_dot_product_attention"):
        paths["sdpa"] = sdpa
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for T in [int(x) for x in a.lengths.split(",")]:
        for name, fn in paths.items():
            if name == "explicit" and T > 4096:
                continue  # 16,384² scores need about 25 GB
            torch.manual_seed(1)
            q = torch.randn(1, H, T, HD, requires_grad=True)
            k = torch.randn(1, KV, T, HD, requires_grad=True)
            v = torch.randn(1, KV, T, HD, requires_grad=True)
            d = torch.randn(1, H, T, HD)
            peaks, times = [], []
            for _ in range(a.runs):
                q.grad = k.grad = v.grad = None
                mask = None
                if name == "explicit":
                    mask = torch.full((T, T), float("-inf")).triu(1)
                libc.malloc_trim(0)
                base = reset_peak()
                t0 = time.perf_counter()
                out = fn(q, k, v, mask)
                (out * d).sum().backward()
                times.append(time.perf_counter() - t0)
                del out
                peaks.append(status_kb("VmHWM:") - base)
                del mask
            print(f"T={T} {name}: {statistics.median(times):.3f} s  peak {min(peaks) / 1024:.1f} MB")


if __name__ == "__main__":
    main()
