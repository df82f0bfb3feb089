"""What each ingredient of the face-model fit adds, leave one head out on the bundled real CTs.

For each bundled head: its skull, landmarks and true skin as `skull2face predict` reads them;
the thickness prior measured on the OTHER head only; then the fit with each dense term switched
in turn (none: landmarks and the model's prior only; map: the filled skull + 6 mm as a lower
bound; envelope: the first version's 3D 6 mm envelope; prior: the measured thickness prior),
each face map's mesh scored by `skull2face evaluate` (truth -> prediction over the face region).

    python benchmarks/face_model_ablation.py [--out runs/ablation]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import trimesh

from skull2face import samples
from skull2face.geometry.depthmap import RenderSpec, depth_to_mesh, render
from skull2face.geometry.frame import apply
from skull2face.io.landmarks import read_landmarks
from skull2face.io.meshes import save_mesh
from skull2face.methods.face_model import face_model_face
from skull2face.stages.evaluate import evaluate
from skull2face.stages.predict import PredictSettings, predict
from skull2face.statistics.thickness_prior import build_prior

VARIANTS = ("none", "map", "envelope", "prior")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/ablation")
    args = ap.parse_args()
    out = Path(args.out)
    heads = {}
    for name in ("headsq", "cranium"):
        run = out / name / "read"
        rec = predict(samples.path(name), run, PredictSettings(method="envelope"), picture=False)
        heads[name] = (RenderSpec.from_json(rec["spec"]), trimesh.load(run / "skull.ply", process=False),
                       trimesh.load(run / "truth_skin.ply", process=False),
                       read_landmarks(run / "skull_landmarks.json", surface="skull"), run)
    rows = {}
    for name, (spec, skull, skin, lms, run) in heads.items():
        others = []
        for other, (ospec, oskull, oskin, olms, _) in heads.items():
            if other != name:
                pts = {k: apply(ospec.frame, np.asarray(v)) for k, v in olms.points.items()}
                others.append((other, render(oskull, ospec).height, render(oskin, ospec).height, pts))
        prior = build_prior(others, spec)
        skull_map = render(skull, spec)
        for variant in VARIANTS:
            info = {}
            t = time.perf_counter()
            fm = face_model_face(skull, lms.points, spec, dense=variant, prior=prior, skull_map=skull_map, info=info)
            seconds = time.perf_counter() - t
            d = out / name / variant
            d.mkdir(parents=True, exist_ok=True)
            save_mesh(depth_to_mesh(fm), d / "face.ply")
            m = evaluate(d / "face.ply", run / "truth_skin.ply", d / "eval")["truth_to_prediction"]
            rows[f"{name}/{variant}"] = {"rmse_mm": round(m["rmse_mm"], 2),
                                         "within_2.5mm": round(100 * m["share_within_2.5mm"], 1),
                                         "seconds": round(seconds, 2), "fit_s": info.get("time_s", {}).get("fit")}
            print(f"{name:8s} {variant:9s} RMSE {m['rmse_mm']:.2f} mm  within 2.5 mm {100 * m['share_within_2.5mm']:.0f} %"
                  f"  ({seconds:.2f} s, fit {rows[f'{name}/{variant}']['fit_s']} s)", flush=True)
    (out / "ablation.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
