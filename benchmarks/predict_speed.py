"""Seconds from a skull mesh to a face mesh, as a user meets them: whole process and per step.

Targets (issue 10, this 2-core CPU): ``skull2face predict`` on the bundled Arothron skull under
4 s whole-process with landmark detection under 1 s; ``skull2face --help`` under 0.5 s.
Each figure is the median of ``--repeats`` runs.

Measured (issue 21 item "speed", this 2-core machine, face-model, median of 3, another job
sharing the CPUs; whole process, then inside: read / landmarks / render / method / mesh writing /
total / predict.png, s):

    Arothron skull mesh   before 7.08: 0.10 / 2.83 / 0.01 / 1.09 / 0.82 / 4.93 / (not timed, ~0.4)
                          after  4.75: 0.09 / 2.44 / 0.01 / 0.48 / 0.10 / 3.15 / 0.29
    head CT (cranium)     before 11.31: 1.94 / 3.11 / 0.04 / 2.20 / 0.78 / 8.01 / (not timed)
                          after   9.77: 1.85 / 2.70 / 0.03 / 2.02 / 0.12 / 6.78 / 1.60
    CT's skull mesh       before 9.50: 0.43 / 3.05 / 0.04 / 2.51 / 0.76 / 6.80 / (not timed)
                          after  8.04: 0.44 / 2.86 / 0.03 / 2.19 / 0.11 / 5.63 / 0.93

What changed: the depth maps' previews and ``predict.png`` are drawn with Pillow, so
``predict`` imports no matplotlib (its import and the figures' layout and Agg drawing were
~1.3 s of the mesh's 7 s). Still over the 4 s / 6 s targets: Python with numpy, scipy and
trimesh imported (~1.0 s), landmarks (the coarse pose's and detection's mirror-plane searches,
Nelder-Mead over nearest-neighbour queries, ~2/3 of it), the head-model fit (0.5-2 s) and, for
the CT, extraction (1.9 s) and the shading of the 1 M-triangle true skin for ``predict.png``
(its ray-casting structure is built for the picture alone).

    python benchmarks/predict_speed.py [--method face-model] [--repeats 3] [--ct]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skull2face import samples

STEPS = ("read_s", "landmarks_s", "render_s", "method_s", "mesh_s", "total_s", "picture_s")


def _whole_process(argv: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "skull2face", *argv], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"skull2face {' '.join(argv)} failed: {r.stderr.strip()}")
    return time.perf_counter() - t


def _predict(inp: Path, out: Path, method: str) -> tuple[float, dict]:
    wall = _whole_process(["-q", "predict", str(inp), "--out", str(out), "--method", method])
    timings = json.loads((out / "predict.json").read_text())["timings"]
    return wall, timings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", default="face-model")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ct", action="store_true", help="also time a head CT and the CT's skull mesh")
    args = ap.parse_args()

    helps = [_whole_process(["--help"]) for _ in range(max(5, args.repeats))]
    print(f"skull2face --help: {statistics.median(helps):.3f} s whole-process (median of {len(helps)}; target < 0.5 s)")

    inputs = [("Arothron skull mesh (100k triangles, unknown pose, no mandible)", samples.path("arothron_skull"))]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.ct:
            _, t = _predict(samples.path("cranium"), tmp / "ct", args.method)
            inputs += [("head CT cranium_ct0051", samples.path("cranium")),
                       ("CT skull mesh (cranium_ct0051, ~500k triangles)", tmp / "ct" / "skull.ply")]
        for name, path in inputs:
            runs = [_predict(path, tmp / f"run{i}", args.method) for i in range(args.repeats)]
            wall = statistics.median(w for w, _ in runs)
            steps = {k: statistics.median(t.get(k, 0.0) for _, t in runs) for k in STEPS}
            inside = ", ".join(f"{k[:-2]} {v:.2f}" for k, v in steps.items())
            print(f"{name} -> face ({args.method}): {wall:.2f} s whole-process (median of {args.repeats}; "
                  f"target < 4 s); inside: {inside} s")


if __name__ == "__main__":
    main()
