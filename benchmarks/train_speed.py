"""How fast does the skull2face cGAN train at each stage resolution?

Times `skull2face.model.cgan.train_step` (one discriminator update and one generator update, the
exact step `train` runs) with the default network widths of `TrainSettings`, batch size 8 of
each kind of sample (8 paired, 8 unpaired skulls, 8 unpaired faces, i.e. 24 samples and 16
generator passes per step), the face discriminator on and L_A over 10 landmarks. Random maps:
speed does not depend on the values. Prints, per resolution and device, seconds per step and
samples per second (all 24 samples counted) from the median of the timed steps after warm-up
steps, and the fastest step (on a shared machine the median can be inflated by other load: with
several threads a single preempted thread stalls the whole step).

Run: ``python benchmarks/train_speed.py [--max-res 256] [--steps 5] [--threads N] [--cpu-only]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from skull2face.model import GanConfig, build_nets, make_denormalise, train_step
from skull2face.stages.train import TrainSettings


def random_batch(b: int, res: int, n_lm: int, device: torch.device) -> dict:
    g = torch.Generator().manual_seed(res)

    def maps(c: int) -> torch.Tensor:
        return torch.rand(b, c, res, res, generator=g)

    def skull_part() -> dict:
        mask = (maps(1) > 0.3).float()
        return {"x": torch.cat([maps(1) * mask, mask], 1),
                "la_px": torch.rand(b, n_lm, 2, generator=g) * (res - 1),
                "la_height": torch.rand(b, n_lm, generator=g),
                "la_valid": torch.ones(b, n_lm, dtype=torch.bool)}

    paired = {**skull_part(), "face": maps(1), "face_mask": (maps(1) > 0.3).float()}
    batch = {"paired": paired, "unpaired-skull": skull_part(), "unpaired-face": {"face": maps(1)}}
    return {k: {kk: v.to(device) for kk, v in part.items()} for k, part in batch.items()}


def bench(device: torch.device, max_res: int, batch: int, steps: int, warmup: int) -> None:
    settings = TrainSettings(final_res=max_res, batch_size=batch, device=str(device), progress=False,
                             residual=False)  # the step cost is the same; residual needs per-sample base maps
    config = GanConfig.from_settings(settings)
    nets = build_nets(config, device)
    denorm = make_denormalise(-150.0, 50.0, settings.k)
    n_samples = 3 * batch
    print(f"\n{device}: G {sum(p.numel() for p in nets.g_mod.parameters()):,} parameters "
          f"(base {settings.g_base}, max_ch {settings.g_max_ch}), D {sum(p.numel() for p in nets.d_mod.parameters()):,}"
          f" x2; batch {batch} of each kind = {n_samples} samples/step")
    print(f"{'res':>5} {'s/step':>9} {'samples/s':>10} {'best s/step':>12} {'best samples/s':>15}")
    res = settings.stages()[0][0]
    while res <= max_res:
        b = random_batch(batch, res, 10, device)
        times = []
        for i in range(warmup + steps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            # alpha < 1 on every stage but the first: the fade-in path is the slower one
            train_step(nets, b, 0.5 if res > settings.stages()[0][0] else 1.0, config, denorm)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - t)
        sec, best = statistics.median(times), min(times)
        print(f"{res:>5} {sec:>9.3f} {n_samples / sec:>10.1f} {best:>12.3f} {n_samples / best:>15.1f}", flush=True)
        res *= 2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-res", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5, help="timed steps per resolution")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all cores)")
    p.add_argument("--cpu-only", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, CUDA: {torch.cuda.is_available()}")
    bench(torch.device("cpu"), args.max_res, args.batch, args.steps, args.warmup)
    if torch.cuda.is_available() and not args.cpu_only:
        bench(torch.device("cuda"), args.max_res, args.batch, max(args.steps, 10), max(args.warmup, 3))


if __name__ == "__main__":
    main()
