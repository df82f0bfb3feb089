"""Seconds per skull-photo pair for ``skull2face superimpose`` (issue 12 target: under 5 s).

A frontal "photograph" of each bundled head's skin is rendered through a known camera
(`skull2face.superimposition.synthetic`); the head's own skull mesh is superimposed on it by
the command, whole process, (a) with its landmarks given, no face, no pictures: the fit
itself; (b) with pictures; (c) with pictures and the face-model face (the default); and
(d) from the head CT itself (extraction and landmark detection included). Each figure is the
median of ``--repeats`` runs, with the stage's own per-step timings.

    python benchmarks/superimpose_speed.py [--repeats 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from superimpose_discrimination import make_photo, prepare_head  # noqa: E402

from skull2face import samples  # noqa: E402


def _run(argv: list[str], out: Path) -> tuple[float, dict]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "skull2face", "-q", "superimpose", *argv, "--out", str(out)],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"superimpose failed: {r.stderr.strip()}")
    return wall, json.loads((out / "superimpose.json").read_text())["timings"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in ("headsq", "cranium"):
            head = prepare_head(name, tmp)
            photo, lms, _ = make_photo(head, 0, 0, tmp)
            mesh = [str(head["skull_path"]), str(photo), "--photo-landmarks", str(lms),
                    "--landmarks", str(head["skull_landmarks_path"])]
            cases = [("skull mesh, landmarks given, no face, no pictures", mesh + ["--no-face", "--no-picture"]),
                     ("skull mesh, landmarks given, pictures", mesh + ["--no-face"]),
                     ("skull mesh, landmarks given, pictures + face (default)", mesh),
                     ("head CT (extract + detect), pictures, no face",
                      [str(samples.path(name)), str(photo), "--photo-landmarks", str(lms), "--no-face"])]
            for label, argv in cases:
                runs = [_run(argv, tmp / f"o{i}") for i in range(args.repeats)]
                wall = statistics.median(w for w, _ in runs)
                keys = sorted({k for _, t in runs for k in t})
                steps = ", ".join(f"{k[:-2]} {statistics.median(t.get(k, 0.0) for _, t in runs):.2f}" for k in keys)
                print(f"{name}: {label}: {wall:.2f} s whole process (median of {args.repeats}; target < 5 s); "
                      f"inside: {steps}")


if __name__ == "__main__":
    main()
