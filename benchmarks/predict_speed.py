"""Seconds from a skull mesh to a face mesh, as a user meets them: whole process and per step.

Targets (issue 10, this 2-core CPU): ``skull2face predict`` on the bundled Arothron skull under
4 s whole-process with landmark detection under 1 s; ``skull2face --help`` under 0.5 s.
Each figure is the median of ``--repeats`` runs.

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

STEPS = ("read_s", "landmarks_s", "render_s", "method_s", "mesh_s", "total_s")


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
