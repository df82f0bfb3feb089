"""Seconds to extract skull and skin from each bundled CT and from a 512 x 512 x 300 volume.

Target: under 10 s for 512 x 512 x 300 int16 on a 2-core CPU (reading excluded: the
synthetic volume is made in memory). Prints where the time goes.

    python benchmarks/extract_speed.py [--no-large]
"""

import argparse
import time

from skull2face import samples
from skull2face.geometry.surfaces import extract_surfaces
from skull2face.io.volumes import read_volume
from skull2face.phantoms import head_phantom


def report(name, vol, read_s):
    t = time.perf_counter()
    surf = extract_surfaces(vol)
    total = time.perf_counter() - t
    tm = surf.record["timings"]
    parts = ", ".join(f"{k[:-2]} {v:.2f}" for k, v in tm.items() if k != "total_s")
    print(f"{name:<28} grid {'x'.join(map(str, vol.shape)):<12} read {read_s:5.2f} s  extract {total:5.2f} s"
          f"  ({parts})  skin {len(surf.skin.faces):,} tris, skull {len(surf.skull.faces):,} tris")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-large", action="store_true", help="skip the 512 x 512 x 300 volume")
    args = ap.parse_args()
    for name in ("headsq", "cranium"):
        t = time.perf_counter()
        vol = read_volume(samples.path(name))
        report(name, vol, time.perf_counter() - t)
    if not args.no_large:
        t = time.perf_counter()
        vol = head_phantom(shape=(512, 512, 300), spacing=(0.45, 0.45, 0.7), skin_radius=80.0,
                           bone_radii=(66.0, 73.0), cavity_radius=25.0, airway_radius=6.0, table=True,
                           metal_speck=True, stretch=(1.0, 1.2, 1.05))
        print(f"(made the synthetic head in {time.perf_counter() - t:.1f} s)")
        report("synthetic head 512x512x300", vol, 0.0)


if __name__ == "__main__":
    main()
