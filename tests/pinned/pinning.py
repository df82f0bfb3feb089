"""What ``make_pins.py`` pins and ``test_pinned.py`` checks: one function, so both compute alike.

Only the user-facing stage functions are called (predict, evaluate, landmarks), so the pin
survives any reorganisation of the library beneath them. (The pins were written before the
restructure, when these stages were the top-level modules ``skull2face.predict`` etc.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HEADS = ("headsq", "cranium")
METHODS = ("skull2face", "tissue-depth", "mean-face", "nearest-skull")
METRICS = ("rmse_mm", "mean_mm", "median_mm", "p95_mm", "share_within_2.5mm", "coverage")


def _stages():
    from skull2face.stages.evaluate import evaluate
    from skull2face.stages.landmarks import LandmarkSettings, find_landmarks
    from skull2face.stages.predict import PredictSettings, predict

    def find(path, surface):
        return find_landmarks(path, settings=LandmarkSettings(surface=surface))

    return evaluate, find, PredictSettings, predict


def _points(lms) -> np.ndarray:
    from skull2face.anatomy import names

    order = list(names.SKULL) + list(names.FACE)
    return np.array([lms.points.get(n, (np.nan,) * 3) for n in order], dtype=np.float64).reshape(-1, 3)


def compute(tmp: Path, heads=HEADS, methods=METHODS) -> dict[str, np.ndarray]:
    """Every pinned array, computed now (``tmp``: a scratch folder)."""
    from skull2face import samples

    evaluate, find_landmarks, PredictSettings, predict = _stages()
    out: dict[str, np.ndarray] = {}
    out["arothron_skull_landmarks"] = _points(find_landmarks(samples.path("arothron_skull"), "skull"))
    for head in heads:
        for method in methods:
            run = tmp / f"{head}-{method}"
            predict(samples.path(head), run, PredictSettings(method=method), picture=False)
            face = np.load(run / "face_map.npz")["height"]
            out[f"{head}_{method}_face"] = face[::2, ::2].astype(np.float32)
            if method == methods[0]:
                out[f"{head}_skull_landmarks"] = _points(find_landmarks(run / "skull.ply", "skull"))
                out[f"{head}_skin_landmarks"] = _points(find_landmarks(run / "truth_skin.ply", "face"))
            rec = evaluate(run / "face.ply", run / "truth_skin.ply", tmp / f"eval-{head}-{method}")
            m = rec["truth_to_prediction"]
            out[f"{head}_{method}_metrics"] = np.array([float(m[k]) for k in METRICS])
    return out
