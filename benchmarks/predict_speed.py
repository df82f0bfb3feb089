"""End-to-end seconds from a skull mesh to a face mesh, and from a head CT.

Target: under 2 s from a skull mesh at 256 x 256 on a 2-core CPU.

    python benchmarks/predict_speed.py [--method skull2face] [--model PATH]
"""

import argparse
import tempfile
import time
from pathlib import Path

from skull2face import samples
from skull2face.stages.predict import PredictSettings, predict


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="skull2face")
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    settings = PredictSettings(method=args.method, model=args.model, data=args.data)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # a skull mesh as a user brings it: the bundled CT's skull written out by extract
        rec = predict(samples.path("cranium"), tmp / "ct", settings, picture=False)
        print(f"head CT -> face ({args.method}): {rec['timings']['total_s']:.2f} s  {rec['timings']}")
        skull = tmp / "ct" / "skull.ply"
        for name, path in (("CT skull mesh (534k triangles)", skull),
                           ("Arothron skull mesh (100k triangles, unknown pose)", samples.path("arothron_skull"))):
            t = time.perf_counter()
            rec = predict(path, tmp / name[:5], settings, picture=False)
            wall = time.perf_counter() - t
            print(f"{name} -> face ({args.method}): {wall:.2f} s wall  {rec['timings']}")


if __name__ == "__main__":
    main()
