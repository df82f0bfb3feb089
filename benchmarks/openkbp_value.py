"""Do the coarse OpenKBP radiotherapy heads help? Leave one clean head out, per face region.

The 58 OpenKBP CTs (``../shared/data/ct/openkbp_rt``) are real skull-skin pairs, but coarse
(~4.7 mm in-plane), under radiotherapy masks that press on the skin, often with a mouthpiece.
Their value must be measured, never assumed. This script measures what they add to the
dense soft-tissue thickness prior (`skull2face.statistics.thickness_prior`), which is what the
default method (``face-model``) and the base of skull2face's generator use:

1. every head (clean and OpenKBP) is read once: skull and skin extracted, skull landmarks
   detected, head frame placed, frontal skull and face maps rendered on the dataset grid
   (cached under ``OUT/cache``); the dataset's quality gate, when present, gives its status
   and per-pixel weights (else: the whole face, or the upper face with ``--upper``);
2. for each clean head in turn: the prior from the OTHER clean heads only, then with the
   OpenKBP heads added at each weight of ``--weights``;
3. ``skull2face predict --method face-model`` with each prior, scored by ``skull2face
   evaluate`` (truth -> prediction over the face region, area-weighted), per sub-region.

    python benchmarks/openkbp_value.py [--out runs/openkbp_value] [--weights 0.1 1] [--kbp N]

Prints one table per held-out head and the mean over heads; writes ``OUT/value.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import multiprocessing as mp
import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct"
"""``../shared/data/ct`` beside the repository (``--shared`` for another place)."""
GRID = {"size": 256, "mm_per_px": 1.0}


def clean_heads(shared: Path) -> dict[str, str]:
    """The clean real CT heads: the two bundled ones, and the GE clinical series when readable."""
    from skull2face import samples

    heads = {"headsq": str(samples.path("headsq")), "cranium_ct0051": str(samples.path("cranium"))}
    ge = shared / "ge_hispeed_tilted_dicom"
    if ge.is_dir():
        heads["ge_hispeed"] = str(ge)
    return heads


def head_maps(args: tuple[str, str, str]) -> dict | None:
    """Extract, landmark and render one head; returns its cached maps (or the reason it failed)."""
    name, path, cache = args
    out = Path(cache) / f"{name}.npz"
    if out.exists():
        with np.load(out, allow_pickle=False) as d:
            return {k: d[k] for k in d.files}
    from skull2face.anatomy.detect import detect_landmarks
    from skull2face.errors import InputError
    from skull2face.geometry.depthmap import DEFAULT_Z_FAR, DEFAULT_Z_NEAR, HEAD_MAP_CENTRE, RenderSpec, render
    from skull2face.geometry.frame import apply, head_frame
    from skull2face.geometry.pose import lps_frame
    from skull2face.geometry.surfaces import SurfaceSettings, extract_surfaces
    from skull2face.io.volumes import read_volume

    t = time.perf_counter()
    try:
        vol = read_volume(path)
        surf = extract_surfaces(vol, SurfaceSettings(target_faces=120_000))
        lms = detect_landmarks(surf.skull, "skull", lps_frame(surf.skull))
        frame = head_frame(lms.points, "skull").matrix
    except (InputError, ValueError) as exc:
        rec = {"error": np.array(str(exc).splitlines()[0])}
        np.savez(out, **rec)
        return rec
    spec = RenderSpec(size=(GRID["size"],) * 2, mm_per_px=GRID["mm_per_px"], frame=frame, z_near=DEFAULT_Z_NEAR,
                      z_far=DEFAULT_Z_FAR, centre=HEAD_MAP_CENTRE)
    names = sorted(k for k, v in lms.points.items() if np.all(np.isfinite(v)))
    rec = {"skull": render(surf.skull, spec).height, "face": render(surf.skin, spec).height,
           "frame": frame, "lm_names": np.array(names),
           "lm_points": np.array([apply(frame, np.asarray(lms.points[k])[None])[0] for k in names]),
           "seconds": np.float64(time.perf_counter() - t)}
    np.savez_compressed(out, **rec)
    return rec


def upper_face_weight(rec: dict, spec) -> np.ndarray:
    """1 above nasospinale and off the nose, 0 below (mouthpiece, mask on lips and nose)."""
    pts = dict(zip([str(n) for n in rec["lm_names"]], rec["lm_points"]))
    x, y = spec.xy_grid()
    ns = pts.get("Ns", pts.get("N", np.zeros(3)) - np.array([0.0, 50.0, 0.0]))
    n = pts.get("N", ns + np.array([0.0, 50.0, 0.0]))
    nose = (np.abs(x - n[0]) < 18.0) & (y < n[1] - 5.0)
    return ((y > ns[1] + 5.0) & ~nose).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/openkbp_value")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.1, 1.0],
                    help="per-head weights of the OpenKBP heads (0 = without them)")
    ap.add_argument("--upper", action="store_true", help="OpenKBP heads count above nasospinale only")
    ap.add_argument("--kbp", type=int, default=0, help="use only the first N OpenKBP heads (0: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shared", type=Path, default=SHARED, help="the shared data's ct/ folder")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from skull2face.geometry.depthmap import HEAD_MAP_CENTRE, RenderSpec
    from skull2face.report.tables import metrics_table
    from skull2face.stages.evaluate import evaluate
    from skull2face.stages.predict import PredictSettings, predict
    from skull2face.statistics.thickness_prior import build_prior

    out = Path(args.out)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    clean = clean_heads(args.shared)
    kbp = {p.name.split(".")[0]: str(p) for p in sorted((args.shared / "openkbp_rt").glob("pt_*.nii.gz"))}
    if args.kbp:
        kbp = dict(list(kbp.items())[:args.kbp])
    todo = [(n, p, str(cache)) for n, p in {**clean, **kbp}.items()]
    t = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
        recs = dict(zip([n for n, *_ in todo], pool.map(head_maps, todo)))
    failed = {n: str(r["error"]) for n, r in recs.items() if "error" in r}
    print(f"read {len(recs)} heads in {time.perf_counter() - t:.0f} s; failed: {len(failed)}")
    for n, why in failed.items():
        print(f"  {n}: {why}")
    spec = RenderSpec(size=(GRID["size"],) * 2, mm_per_px=GRID["mm_per_px"], centre=HEAD_MAP_CENTRE)

    def entry(name):
        r = recs[name]
        return (name, r["skull"], r["face"], dict(zip([str(k) for k in r["lm_names"]], r["lm_points"])))

    kbp_ok = [n for n in kbp if n not in failed]
    rows, results = {}, {}
    for held in [n for n in clean if n not in failed]:
        others = [n for n in clean if n != held and n not in failed]
        variants = {"clean only": ([entry(n) for n in others], [1.0] * len(others))}
        for w in args.weights:
            kw = [upper_face_weight(recs[n], spec) * w if args.upper else w for n in kbp_ok]
            variants[f"+{len(kbp_ok)} OpenKBP x{w:g}"] = ([entry(n) for n in others + kbp_ok],
                                                          [1.0] * len(others) + kw)
        for label, (heads, wts) in variants.items():
            folder = out / held / label.replace(" ", "_").replace("+", "")
            folder.mkdir(parents=True, exist_ok=True)
            build_prior(heads, spec, weights=wts).save(folder / "prior.npz")
            rec = predict(clean[held], folder / "predict", PredictSettings(method="face-model", data=str(folder)),
                          picture=False)
            m = evaluate(folder / "predict" / rec["outputs"]["face.ply"], folder / "predict" / "truth_skin.ply",
                         folder / "eval")["truth_to_prediction"]
            rows[f"{held}/{label}"] = m
            results[f"{held}/{label}"] = {
                "rmse_mm": m["rmse_mm"], "within_2.5mm": m["share_within_2.5mm"],
                "regions": {k: {"rmse_mm": v["rmse_mm"], "within_2.5mm": v["share_within_2.5mm"]}
                            for k, v in m.get("regions", {}).items()}}
            regs = "  ".join(f"{k} {v['rmse_mm']:.1f}" for k, v in m.get("regions", {}).items())
            print(f"{held:16s} {label:24s} RMSE {m['rmse_mm']:.2f} mm, within 2.5 mm {100 * m['share_within_2.5mm']:.0f} %"
                  f"  | {regs}", flush=True)
    print(metrics_table(rows))
    (out / "value.json").write_text(json.dumps({"failed": failed, "results": results}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
