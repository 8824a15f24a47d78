"""PyTorch reference for bench/dist: the same all-reduces as `dist allreduce`,
with torch.distributed (Gloo) on Debian's libtorch. Run under torchrun:

    /usr/bin/python3 train/dist/testdata/torchrun.py --nproc_per_node 2 bench/dist/ref_allreduce.py --mb 100 --iters 5
"""
import argparse
import statistics
import time

import torch
import torch.distributed as dist


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--grads", type=int, default=100)
    ap.add_argument("--small", type=int, default=2000)
    a = ap.parse_args()
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    n = a.mb * 1_000_000 // 4
    one = [torch.ones(n)]
    many = [torch.ones(n // a.grads) for _ in range(a.grads)]
    tiny = [torch.ones(n // a.small) for _ in range(a.small)]
    layouts = (("one tensor", one), (f"{a.grads} tensors, one call each", many), (f"{a.small} tensors, one call each", tiny))
    for name, tensors in layouts:
        times = []
        for i in range(a.iters + 1):
            dist.barrier()
            t0 = time.perf_counter()
            works = [dist.all_reduce(t, async_op=True) for t in tensors]
            for w in works:
                w.wait()
            if i > 0:
                times.append(time.perf_counter() - t0)
        if rank == 0:
            m = statistics.median(times)
            algbw = n * 4 / m / 1e9
            busbw = algbw * 2 * (size - 1) / size
            print(f"PyTorch gloo all-reduce, {size} ranks, {a.mb} MB as {name}: median {m:.3f} s, "
                  f"algbw {algbw:.2f} GB/s, busbw {busbw:.2f} GB/s", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
