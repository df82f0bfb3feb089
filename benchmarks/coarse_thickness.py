"""Soft-tissue thickness on coarse grids: fixed iso-values against half-step edges.

Each bundled CT head is resampled the way a coarser scanner would see it (SimpleITK: a Gaussian
anti-alias whose FWHM brings the blur up to the new voxel side, per axis, then linear
resampling onto the coarse grid, same physical space) to

* ``2mm``: 2 x 2 x 2 mm;
* ``rt``: 1.2 x 1.2 x 2.5 mm, a radiotherapy planning CT's grid;
* ``openkbp``: the most common spacing among the OpenKBP heads' headers in
  ``shared/data/ct/openkbp_rt`` (read with SimpleITK; 4.688 x 4.688 x 3.0 mm when that folder
  is missing).

Skin and skull are extracted from the full-resolution CT (``edges="iso"``: the reference) and
from each grid with ``edges="iso"`` and ``edges="half-step"``. All are rendered in the head
frame of the full-resolution skull's landmarks (`geometry.frame.head_frame`) at 1 mm per pixel;
the thickness map is `statistics.thickness_prior.measure` and the regions are
`methods.correction.region_labels`. The table gives, per head, grid, method and region, the
median over pixels of (thickness on the grid minus the reference's), mm, against two
references: the full-resolution CT's iso surfaces, and its surfaces by the same method (a
head whose own CT is coarse, like headsq at 3.2 mm in-plane, is no fine reference for iso);
the ``full`` grid row with ``half-step`` shows what half-step does at full resolution. Target:
|median| <= 0.5 mm per region with half-step.

    python benchmarks/coarse_thickness.py [--faces N] [--heads headsq cranium_ct0051]
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from skull2face.anatomy.detect import detect_landmarks
from skull2face.dataset.weights import REGIONS
from skull2face.geometry.depthmap import HEAD_MAP_CENTRE, RenderSpec, render
from skull2face.geometry.frame import head_frame
from skull2face.geometry.pose import lps_frame
from skull2face.geometry.surfaces import SurfaceSettings, extract_surfaces
from skull2face.io.volumes import Volume, read_volume
from skull2face.methods.correction import region_labels
from skull2face.statistics.thickness_prior import measure

DATA = Path(__file__).resolve().parents[1] / "src" / "skull2face" / "data" / "ct"
OPENKBP = Path("/work/shared/data/ct/openkbp_rt")
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
MM_PER_PX = 1.0


def openkbp_spacing(folder: Path = OPENKBP) -> tuple[float, float, float]:
    """The most common voxel spacing (mm, rounded to 0.001) among the folder's .nii.gz headers."""
    counts: collections.Counter = collections.Counter()
    for f in sorted(folder.glob("*.nii.gz")):
        r = sitk.ImageFileReader()
        r.SetFileName(str(f))
        r.ReadImageInformation()
        counts[tuple(round(s, 3) for s in r.GetSpacing())] += 1
    return counts.most_common(1)[0][0] if counts else (4.688, 4.688, 3.0)


def resample(vol: Volume, spacing: tuple[float, float, float]) -> Volume:
    """Blur to the new voxel (Gaussian, FWHM^2 = new^2 - old^2 per axis) and resample linearly."""
    img = sitk.Cast(vol.to_sitk(), sitk.sitkFloat32)
    new = np.asarray(spacing, np.float64)
    sigma = np.sqrt(np.maximum(new ** 2 - vol.spacing ** 2, 0.0)) / FWHM_PER_SIGMA
    if np.any(sigma > 0):
        img = sitk.SmoothingRecursiveGaussian(img, [max(float(s), 1e-3) for s in sigma])
    size = [int(np.floor((n - 1) * s / t)) + 1 for n, s, t in zip(vol.shape, vol.spacing, new)]
    out = sitk.Resample(img, size, sitk.Transform(), sitk.sitkLinear, img.GetOrigin(), new.tolist(),
                        img.GetDirection(), -1000.0, sitk.sitkFloat32)
    arr = np.rint(sitk.GetArrayFromImage(out).transpose(2, 1, 0)).astype(np.int16)
    return Volume(arr, new, vol.origin.copy(), vol.direction.copy(), vol.source + f" @ {new.tolist()}", {})


def thickness(vol: Volume, edges: str, spec: RenderSpec, faces: int) -> tuple[np.ndarray, dict]:
    surf = extract_surfaces(vol, SurfaceSettings(edges=edges, target_faces=faces))
    skull, skin = render(surf.skull, spec), render(surf.skin, spec)
    return measure(skull.height, skin.height, spec.mm_per_px), surf.record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=150_000, help="decimate each mesh to about N triangles")
    ap.add_argument("--heads", nargs="+", default=["headsq", "cranium_ct0051"])
    args = ap.parse_args()
    grids = {"2mm": (2.0, 2.0, 2.0), "rt": (1.2, 1.2, 2.5), "openkbp": openkbp_spacing()}
    print("grids (mm):", {k: list(v) for k, v in grids.items()})
    rows = []
    for name in args.heads:
        t0 = time.perf_counter()
        vol = read_volume(DATA / f"{name}.nii.gz")
        ref = extract_surfaces(vol, SurfaceSettings(target_faces=args.faces))
        lms = detect_landmarks(ref.skull, "skull", lps_frame(ref.skull))
        frame = head_frame(lms.points, "skull")
        spec = RenderSpec(size=(256, 256), mm_per_px=MM_PER_PX, frame=frame.matrix, centre=HEAD_MAP_CENTRE)
        skull_map, skin_map = render(ref.skull, spec), render(ref.skin, spec)
        t_ref = measure(skull_map.height, skin_map.height, MM_PER_PX)
        head_pts = {k: frame.to_head(v) for k, v in lms.points.items() if np.all(np.isfinite(v))}
        labels = region_labels(spec, skin_map.height, head_pts)
        print(f"{name}: spacing {vol.spacing.round(3).tolist()}, reference ready in {time.perf_counter() - t0:.0f} s")
        cases = [("full", "half-step", vol)] + [(g, e, None) for g in grids for e in ("iso", "half-step")]
        coarse_cache: dict = {}
        for grid, edges, v in cases:
            t = time.perf_counter()
            if v is None:
                v = coarse_cache.setdefault(grid, resample(vol, grids[grid]))
            tm, rec = thickness(v, edges, spec, args.faces)
            if grid == "full":
                t_half = tm
            for ref_name, ref_map in (("full iso", t_ref), ("full same", t_ref if edges == "iso" else t_half)):
                diff = tm - ref_map
                per = {}
                for i, region in enumerate(REGIONS):
                    sel = (labels == i) & np.isfinite(diff)
                    per[region] = (float(np.median(diff[sel])) if sel.sum() >= 30 else np.nan, int(sel.sum()))
                allsel = np.isfinite(diff)
                per["all"] = (float(np.median(diff[allsel])), int(allsel.sum()))
                rows.append((ref_name, name, grid, edges, per))
            moved = rec.get("edges", {}).get("skull", {})
            print(f"  {grid:8s} {edges:9s} {time.perf_counter() - t:5.1f} s"
                  + (f"  skull moved {moved.get('moved')}/{moved.get('vertices')} median {moved.get('shift_mm', {}).get('median')} mm"
                     if moved else ""), flush=True)
    cols = list(REGIONS) + ["all"]
    for ref_name in ("full iso", "full same"):
        print(f"\nmedian thickness difference per region (mm): grid minus the full-resolution CT's "
              f"{'iso surfaces' if ref_name == 'full iso' else 'surfaces of the same method'}")
        print(f"{'head':16s} {'grid':8s} {'method':9s} " + " ".join(f"{c:>8s}" for c in cols))
        for ref, name, grid, edges, per in rows:
            if ref == ref_name and not (ref_name == "full same" and grid == "full"):
                print(f"{name:16s} {grid:8s} {edges:9s} " + " ".join(f"{per[c][0]:+8.2f}" for c in cols))
    for head in args.heads:
        last = [r for r in rows if r[1] == head][-1][4]
        print(f"{'pixels ' + head:36s} " + " ".join(f"{last[c][1]:8d}" for c in cols))


if __name__ == "__main__":
    main()
