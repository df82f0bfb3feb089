"""Seconds to extract skull and skin from each bundled CT and from a 512 x 512 x 300 volume.

Target: under 8 s for 512 x 512 x 300 int16 on a 2-core CPU (reading excluded: the
synthetic volume is made in memory). Prints where the time goes: each figure is the minimum
over ``--repeat`` runs (the stages' minima need not come from the same run), with the load
average before and after, since other processes on the machine inflate every figure.

    python benchmarks/extract_speed.py [--no-large] [--repeat N] [--workers N]
"""

import argparse
import os
import time

from skull2face import samples
from skull2face.geometry import voxelops
from skull2face.geometry.surfaces import extract_surfaces
from skull2face.io.volumes import read_volume
from skull2face.phantoms import head_phantom


def report(name, vol, read_s, repeat):
    totals, parts, cpus = [], {}, []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        surf = extract_surfaces(vol)
        totals.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        for k, v in surf.record["timings"].items():
            parts[k] = min(parts.get(k, v), v)
    text = ", ".join(f"{k[:-2]} {v:.2f}" for k, v in parts.items() if k != "total_s")
    print(f"{name:<28} grid {'x'.join(map(str, vol.shape)):<12} read {read_s:5.2f} s  extract {min(totals):5.2f} s"
          f" (min of {repeat}; cpu {min(cpus):5.2f} s)  ({text})  skin {len(surf.skin.faces):,} tris,"
          f" skull {len(surf.skull.faces):,} tris", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-large", action="store_true", help="skip the 512 x 512 x 300 volume")
    ap.add_argument("--repeat", type=int, default=1, metavar="N", help="runs per volume; the minimum is printed")
    ap.add_argument("--workers", type=int, default=None, metavar="N",
                    help="threads for the voxel operations (default: the cores, at most 4)")
    args = ap.parse_args()
    if args.workers is not None:
        voxelops._MAX_WORKERS = args.workers
    print(f"threads {voxelops.n_workers()}, load average before {os.getloadavg()[0]:.2f}", flush=True)
    for name in ("headsq", "cranium"):
        t = time.perf_counter()
        vol = read_volume(samples.path(name))
        report(name, vol, time.perf_counter() - t, args.repeat)
    if not args.no_large:
        t = time.perf_counter()
        vol = head_phantom(shape=(512, 512, 300), spacing=(0.45, 0.45, 0.7), skin_radius=80.0,
                           bone_radii=(66.0, 73.0), cavity_radius=25.0, airway_radius=6.0, table=True,
                           metal_speck=True, stretch=(1.0, 1.2, 1.05))
        print(f"(made the synthetic head in {time.perf_counter() - t:.1f} s)", flush=True)
        report("synthetic head 512x512x300", vol, 0.0, args.repeat)
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
