"""Does the MRI skull measure the same soft tissue at 2 mm as at 1 mm? Pseudo-T1 heads, known answer.

Each bundled CT head is made into pseudo-T1 MRI volumes (`skull2face.dataset.pseudo_mr.pseudo_t1`,
same seed) at 1 x 1 x 1 mm and 2 x 2 x 2 mm. From each, the skin is extracted as an MRI's
(``SurfaceSettings(modality="mr")``) and the skull added by `skull2face.anatomy.mr_skull.add_mr_skull`
(skin moved to its half-step edge, bone at the half-step of the first dark fall under it). The
face's landmarks are taken from the CT's own skin (``detect_landmarks(ct_skin, "face", ...)``)
and passed in: the face detector is not what is measured, the bone search is.

All maps are rendered in ONE head frame, that of the CT skull's landmarks
(`geometry.frame.head_frame`), at `coarse_thickness.MM_PER_PX` mm per pixel; the thickness map
is `statistics.thickness_prior.measure` and the regions `methods.correction.region_labels` on
the CT's skin, as in ``benchmarks/coarse_thickness.py`` (whose ``thickness`` gives the CT's own
reference map, ``edges="iso"``, full resolution). Per region, the medians are taken over the
pixels where the 1 mm, 2 mm and CT maps all have a thickness, so that a difference is one of
tissue depth, not of coverage; ``pixel`` is the median of the per-pixel difference 2 mm - 1 mm.
Target: |median at 2 mm - median at 1 mm| <= 0.5 mm in every region (at least `MIN_PIXELS`
pixels).

Measured (seed 0): NOT met. headsq: forehead -0.14, orbits +0.06, nose +0.68, cheeks +3.89,
mouth +1.47, chin +0.79 mm (2 mm - 1 mm); cranium: +2.1 to +10.7 mm in every region. On
cranium at 1 mm, 73 % of the MRI skull's vertices lie where the (lightly smoothed) CT reads
under 100 HU, i.e. in soft tissue (28 % at 2 mm): the bone search stops early, plausibly on the
dark fluid-valued rim the pseudo-T1 map leaves at fat / muscle boundaries (`pseudo_mr`'s known
simplification), which a 1 mm grid keeps and a 2 mm grid's anti-aliasing blurs away. Orbits
read ~16 mm above the CT because the MRI skull leaves the eyes open. No test asserts the target.

    python benchmarks/mr_coarse_thickness.py [--heads headsq cranium] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the CT reference map, measured as coarse_thickness measures it
from coarse_thickness import MM_PER_PX, thickness

from skull2face.anatomy.detect import detect_landmarks
from skull2face.anatomy.mr_skull import add_mr_skull
from skull2face.dataset.pseudo_mr import pseudo_t1
from skull2face.dataset.weights import REGIONS
from skull2face.errors import InputError
from skull2face.geometry.depthmap import HEAD_MAP_CENTRE, RenderSpec, render
from skull2face.geometry.frame import head_frame
from skull2face.geometry.pose import lps_frame
from skull2face.geometry.surfaces import SurfaceSettings, extract_surfaces
from skull2face.io.volumes import read_volume
from skull2face.methods.correction import region_labels
from skull2face.samples import path as sample_path
from skull2face.statistics.thickness_prior import measure

#: Fewest pixels (1 mm^2 each) for a region's median to be reported.
MIN_PIXELS = 30
#: The agreement asked of the 2 mm pseudo-T1 against the 1 mm one, per region (mm).
TOLERANCE_MM = 0.5
CT_FACES = 150_000


def mr_thickness(ct, spacing_mm: float, spec: RenderSpec, face, seed: int = 0) -> tuple[np.ndarray, dict]:
    """The soft-tissue thickness map of the pseudo-T1 of a CT head, its skull found as an MRI's.

    Parameters
    ----------
    ct : Volume
        A head CT, HU.
    spacing_mm : float
        The pseudo-T1's isotropic voxel side, mm.
    spec : RenderSpec
        The frontal map to render into (head frame, mm per pixel).
    face : LandmarkSet
        The face's landmarks, LPS mm (from the CT's skin).
    seed : int
        `pseudo_t1`'s random seed (bias field, noise).

    Returns
    -------
    numpy.ndarray, shape (H, W), float32, mm
        NaN where not measured (`statistics.thickness_prior.measure`).
    dict
        ``add_mr_skull``'s record of the skull (``surf.record["skull"]``).
    """
    mr = pseudo_t1(ct, spacing_mm=(spacing_mm,) * 3, seed=seed)
    surf = extract_surfaces(mr, SurfaceSettings(modality="mr"))
    surf, _, _ = add_mr_skull(mr, surf, face)
    skull, skin = render(surf.skull, spec), render(surf.skin, spec)
    return measure(skull.height, skin.height, spec.mm_per_px), surf.record["skull"]


def head_table(head: str, seed: int = 0, spacings: tuple[float, float] = (1.0, 2.0)) -> dict:
    """Per-region median thickness of one head: pseudo-T1 at each spacing and the CT's own.

    Returns
    -------
    dict
        ``{"head", "seconds", "regions": {region: {"t1", "t2", "ct", "pixel", "pixels"}}}``; thickness
        medians in mm (``t1``/``t2``: the pseudo-T1 at ``spacings[0]``/``spacings[1]``), NaN under
        `MIN_PIXELS` pixels. ``"all"`` is the whole face.

    Raises
    ------
    InputError, ValueError
        No skull or face landmarks (no head frame) on this head.
    """
    t0 = time.perf_counter()
    ct = read_volume(sample_path(head))
    ref = extract_surfaces(ct, SurfaceSettings(target_faces=CT_FACES))
    lms = detect_landmarks(ref.skull, "skull", lps_frame(ref.skull))
    frame = head_frame(lms.points, "skull")
    face = detect_landmarks(ref.skin, "face", lps_frame(ref.skin))
    spec = RenderSpec(size=(256, 256), mm_per_px=MM_PER_PX, frame=frame.matrix, centre=HEAD_MAP_CENTRE)
    labels = region_labels(spec, render(ref.skin, spec).height,
                           {k: frame.to_head(v) for k, v in lms.points.items() if np.all(np.isfinite(v))})
    t_ct, _ = thickness(ct, "iso", spec, CT_FACES)
    t_a, _ = mr_thickness(ct, spacings[0], spec, face, seed)
    t_b, _ = mr_thickness(ct, spacings[1], spec, face, seed)
    both = np.isfinite(t_a) & np.isfinite(t_b) & np.isfinite(t_ct)
    regions = {}
    for i, region in enumerate(list(REGIONS) + ["all"]):
        sel = both & ((labels == i) if region != "all" else np.ones_like(both))
        n = int(sel.sum())
        med = {k: float(np.median(m[sel])) if n >= MIN_PIXELS else np.nan
               for k, m in (("t1", t_a), ("t2", t_b), ("ct", t_ct), ("pixel", t_b - t_a))}
        regions[region] = {**med, "pixels": n}
    return {"head": head, "spacing_ct_mm": ct.spacing.round(3).tolist(), "spacings_mm": list(spacings),
            "seconds": round(time.perf_counter() - t0, 1), "regions": regions}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", nargs="+", default=["headsq", "cranium"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for head in args.heads:
        try:
            r = head_table(head, args.seed)
        except (InputError, ValueError) as exc:  # no head frame or no face: nothing to measure in
            print(f"\n{head}: skipped ({type(exc).__name__}: {exc})")
            continue
        print(f"\n{head} (CT spacing {r['spacing_ct_mm']} mm, {r['seconds']} s): median soft-tissue thickness, mm")
        print(f"{'region':12s} {'pixels':>6s} {'T1 1mm':>7s} {'T1 2mm':>7s} {'2-1':>6s} {'pixel':>6s} "
              f"{'<=0.5':>5s} {'CT iso':>7s} {'1mm-CT':>7s} {'2mm-CT':>7s}")
        for region, s in r["regions"].items():
            if s["pixels"] < MIN_PIXELS:
                print(f"{region:12s} {s['pixels']:6d}  (too few pixels)")
                continue
            d = s["t2"] - s["t1"]
            print(f"{region:12s} {s['pixels']:6d} {s['t1']:7.2f} {s['t2']:7.2f} {d:+6.2f} {s['pixel']:+6.2f} "
                  f"{'yes' if abs(d) <= TOLERANCE_MM else 'NO':>5s} {s['ct']:7.2f} {s['t1'] - s['ct']:+7.2f} "
                  f"{s['t2'] - s['ct']:+7.2f}")


if __name__ == "__main__":
    main()
