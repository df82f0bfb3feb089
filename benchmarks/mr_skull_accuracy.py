"""How close the MRI skull extraction comes to the bone, on pseudo-T1 heads made from real CTs.

Each bundled CT head is turned into a pseudo-T1 MRI volume (`skull2face.dataset.pseudo_mr.pseudo_t1`:
HU mapped to T1-like intensities per tissue, MRI voxel size, bias field, Rician noise); its
skull is extracted as an MRI's (`extract --modality mr`: `skull2face.anatomy.mr_skull`) and
compared with the CT's own skull (300 HU), over the face's regions
(`skull2face.evaluation.skull_compare.skull_distance_by_region`): mean and 95th percentile of
the distance from each MRI-skull vertex to the CT bone, mm.

Run::

    python benchmarks/mr_skull_accuracy.py [--spacing 2 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time

from skull2face.samples import path as sample_path
from skull2face.evaluation.region import SUBREGIONS


def measure(head: str, spacing: float, seed: int = 0) -> dict:
    """Extract the skull of the pseudo-T1 of one bundled CT head and score it per face region.

    Returns
    -------
    dict
        ``{"head", "spacing_mm", "regions": skull_distance_by_region(...), "seconds"}``.
    """
    from skull2face.anatomy.detect import detect_landmarks
    from skull2face.anatomy.mr_extract import add_mr_skull
    from skull2face.dataset.pseudo_mr import pseudo_t1
    from skull2face.evaluation.skull_compare import skull_distance_by_region
    from skull2face.geometry.pose import lps_frame
    from skull2face.geometry.surfaces import SurfaceSettings, extract_surfaces
    from skull2face.errors import InputError
    from skull2face.io.volumes import read_volume

    t0 = time.perf_counter()
    ct = read_volume(sample_path(head))
    truth = extract_surfaces(ct, SurfaceSettings(target_faces=200_000))
    face = detect_landmarks(truth.skin, "face", lps_frame(truth.skin))
    mr = pseudo_t1(ct, spacing_mm=(spacing,) * 3, seed=seed)
    surf = extract_surfaces(mr, SurfaceSettings(modality="mr"))
    try:
        surf, _, _ = add_mr_skull(mr, surf)
        face_from = "detected on the pseudo-T1 skin"
    except InputError:  # the face detector is not what is measured here: the bone search is
        surf, _, _ = add_mr_skull(mr, surf, face)
        face_from = "the CT skin's (none found on the pseudo-T1 skin)"
    scores = skull_distance_by_region(surf.skull, truth.skull, face.points, surface="face")
    return {"head": head, "spacing_mm": spacing, "regions": scores, "face_landmarks": face_from, "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> None:
    from skull2face.errors import InputError

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heads", nargs="+", default=["headsq", "cranium"])
    ap.add_argument("--spacing", nargs="+", type=float, default=[2.0, 1.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    rows = []
    for head in args.heads:
        for sp in args.spacing:
            try:
                r = measure(head, sp, args.seed)
            except (InputError, ValueError) as exc:  # no face frame: nothing to measure under
                print(f"\n{head} pseudo-T1 at {sp:g} mm: skipped ({exc})")
                continue
            rows.append(r)
            print(f"\n{head} pseudo-T1 at {sp:g} mm ({r['seconds']} s; face landmarks {r['face_landmarks']}): "
                  "distance MRI skull -> CT bone, mm")
            print(f"{'region':12s} {'vertices':>8s} {'mean':>6s} {'p95':>6s}")
            reg = r["regions"]
            for name, s in [("face", reg["face"]), *((k, reg[k]) for k in SUBREGIONS)]:
                if s["vertices"]:
                    print(f"{name:12s} {s['vertices']:8d} {s['mean_mm']:6.2f} {s['p95_mm']:6.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
