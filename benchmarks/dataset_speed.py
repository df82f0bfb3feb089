"""Synthetic samples per second of ``skull2face dataset build`` at 256 x 256.

Target: 1,000 paired samples in under 10 minutes on a 2-core CPU (>= 1.7 samples/s).

    python benchmarks/dataset_speed.py [--n 100] [--workers 2]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from skull2face import samples
from skull2face.dataset.build import DatasetSettings, build_dataset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100, help="synthetic pairs per CT head (2 heads)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build_dataset([samples.path("headsq"), samples.path("cranium")], Path(tmp) / "ds",
                      DatasetSettings(n_paired=args.n, n_skulls=0, n_sfm=0, real_faces=False, size=256,
                                      workers=args.workers))
        total = time.perf_counter() - t
        rec = json.loads((Path(tmp) / "ds" / "dataset.json").read_text())
    n = 2 * args.n
    rate = rec["samples_per_second"]
    print(f"{n} synthetic pairs at 256x256 with {args.workers} workers: {rec['timings']['synthetic_s']:.1f} s "
          f"({rate:.2f} samples/s; whole build {total:.1f} s incl. {rec['timings']['prepare_heads_s']:.1f} s "
          f"extracting and landmarking the real heads)")
    print(f"projected: 1,000 pairs in {1000 / rate / 60:.1f} min (target < 10 min)")


if __name__ == "__main__":
    main()
