"""Speed of ``skull2face dataset build``: synthetic samples per second, or a build over many heads.

Default: synthetic pairs per second at 256 x 256 on the two bundled heads. Target: 1,000 paired
samples in under 10 minutes on a 2-core CPU (>= 1.7 samples/s).

``--heads DIR``: a whole build over every volume in DIR (e.g. the 58 OpenKBP radiotherapy heads:
``--heads ../shared/data/ct/openkbp_rt --n 2 --size 128 --mm-per-px 2``), with the quality gate
on each head, and where the time goes (the heads' extraction, landmarks and gate are summed over
the workers). Target for the 58 OpenKBP heads with 2 workers: under 10 minutes.

    python benchmarks/dataset_speed.py [--n 100] [--workers 2] [--size 256] [--mm-per-px 1]
        [--heads DIR]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from skull2face import samples
from skull2face.dataset.build import DatasetSettings, build_dataset
from skull2face.io.volume_inputs import expand_volume_inputs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100, help="synthetic pairs per CT head")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--mm-per-px", type=float, default=1.0)
    ap.add_argument("--heads", help="a folder of head CTs (default: the two bundled heads)")
    args = ap.parse_args()
    cts = expand_volume_inputs([args.heads]) if args.heads else [samples.path("headsq"), samples.path("cranium")]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        man = build_dataset(cts, Path(tmp) / "ds",
                            DatasetSettings(n_paired=args.n, n_skulls=0, n_sfm=0, real_faces=False, size=args.size,
                                            mm_per_px=args.mm_per_px, workers=args.workers,
                                            test_heads=None if not args.heads else []))
        total = time.perf_counter() - t
        rec = json.loads((Path(tmp) / "ds" / "dataset.json").read_text())
    tm = rec["timings"]
    status = {}
    for h in man["heads"].values():
        status[h["quality"]["status"]] = status.get(h["quality"]["status"], 0) + 1
    n = sum(1 for s in man["samples"] if not s["real"] and s["kind"] == "paired")
    print(f"{len(cts)} heads ({', '.join(f'{v} {k}' for k, v in sorted(status.items()))}), {n} synthetic pairs at "
          f"{args.size}x{args.size} ({args.mm_per_px:g} mm/px) with {args.workers} workers: whole build {total:.1f} s")
    print("where the time goes (wall s): " + ", ".join(f"{k} {v:.1f}" for k, v in tm.items()
                                                       if not k.startswith("heads_")))
    print("per-head work summed over the workers (CPU s): "
          + ", ".join(f"{k[6:]} {v:.1f}" for k, v in tm.items() if k.startswith("heads_")))
    if not args.heads:
        rate = rec["samples_per_second"]
        print(f"{rate:.2f} synthetic samples/s; projected: 1,000 pairs in {1000 / rate / 60:.1f} min (target < 10 min)")


if __name__ == "__main__":
    main()
