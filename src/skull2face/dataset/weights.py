"""Per-pixel validity weights of a paired sample: where its face map may be trusted.

``maps/<id>_weight.npz`` (key ``weight``): float32 ``(H, W)`` in [0, 1] over the sample's face
map (the same render spec). A pixel is 0 when

* it lies in a region the head's quality gate excluded (`skull2face.dataset.quality`): the
  region of a pixel is its sub-region box of `skull2face.evaluation.region.subregion_boxes`
  (placed by the sample's OWN head-frame face landmarks, so it follows a warped synthetic
  sample), with pixels above the forehead box (``y > n_y + 40 mm``) the ``vault`` and pixels
  outside the boxes given the label of the nearest box position (sides -> cheeks, the neck ->
  chin);
* or its face point (the surface seen; for an empty pixel, the point at the map's median face
  height) lies outside the CT's field of view or within `FOV_MARGIN_VOXELS` of its
  boundary (a scan-cut lid, not skin). The volume's box is kept in the real head's frame; a
  synthetic sample's head frame is that of its warped skull, which the warp moves little, so
  the same head-frame box is used.

Everywhere else it is 1; a clean head's map is all ones. A per-head weight (a coarse head
trusted less as a whole) is a training setting, not stored here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..evaluation.region import SUBREGIONS, subregion_boxes

#: Regions a head is judged on (`skull2face.dataset.quality`), in order: the vault, then the
#: face's scored sub-regions.
REGIONS: tuple[str, ...] = ("vault",) + SUBREGIONS
#: A surface point nearer than this many voxels to the volume's boundary is a scan cut (lid),
#: not anatomy (the marching-cubes cap closes within one voxel of the boundary).
FOV_MARGIN_VOXELS = 1.0

#: Label of a pixel above the forehead box.
VAULT = REGIONS.index("vault")
#: The vault's share in view is judged up to this far above the forehead box (mm): the part of
#: the vault a head map (which reaches ~88 mm above nasion) shows.
VAULT_CORE_MM = 48.0


def pixel_labels(spec, face_height: np.ndarray, head_points: Mapping, core: bool = False):
    """Region of every pixel, as an index into `REGIONS`.

    Parameters
    ----------
    spec : RenderSpec
        The map's spec (pixel positions in the head frame).
    face_height : numpy.ndarray, shape (H, W), float
        Face heights (head-frame z, mm), NaN where there is no face (only used for z).
    head_points : mapping of str to (3,)
        Face landmarks in the head frame (mm); missing ones are assumed as the face region
        does (`skull2face.evaluation.region.face_region`).

    core : bool
        Also return the pixels that lie inside the boxes' own extent (``|x| <= x_half``, ``y >=
        y_min``; for the vault up to 60 mm above the forehead box), where a region's share in
        the field of view is judged.

    Returns
    -------
    numpy.ndarray, shape (H, W), int8
        0 vault, ``k`` >= 1 the sub-region ``SUBREGIONS[k - 1]`` (= ``REGIONS[k]``).
    numpy.ndarray, shape (H, W), bool
        Only with ``core``.
    """
    box, b = subregion_boxes(head_points)
    x, y = spec.xy_grid()
    # every pixel takes the label of the nearest position inside the face box, at the front
    xc = np.clip(x, -b["x_half"], b["x_half"])
    yc = np.clip(y, b["y_min"], b["y_max"])
    z = np.where(np.isfinite(face_height), face_height, 0.0)
    zc = np.maximum(z, b["z_min"] + 1.0)
    lab = box(np.stack([xc, yc, zc], axis=-1).reshape(-1, 3)).reshape(x.shape).astype(np.int8)
    lab[y > b["y_max"]] = VAULT
    if not core:
        return lab
    return lab, (np.abs(x) <= b["x_half"]) & (y >= b["y_min"]) & (y <= b["y_max"] + VAULT_CORE_MM)


def in_view(head_to_index: np.ndarray, shape, points_head: np.ndarray, margin_voxels: float) -> np.ndarray:
    """(n,) bool: head-frame points (n, 3) at least ``margin_voxels`` inside the volume's box."""
    from ..geometry.frame import apply

    idx = apply(head_to_index, np.asarray(points_head, dtype=np.float64).reshape(-1, 3))
    hi = np.asarray(shape, dtype=np.float64) - 1.0 - margin_voxels
    return np.all((idx >= margin_voxels) & (idx <= hi), axis=1)


def weight_map(spec, face_height: np.ndarray, head_points: Mapping, quality: Mapping) -> np.ndarray:
    """The validity weight of one sample's face map (module docstring).

    Parameters
    ----------
    spec : RenderSpec
    face_height : numpy.ndarray, shape (H, W)
        The sample's face heights (mm, NaN where none).
    head_points : mapping of str to (3,)
        The sample's face landmarks (or their skull stand-ins,
        `skull2face.dataset.quality.region_landmarks`) in its head frame, mm.
    quality : mapping
        The head's gate result (`HeadQuality.to_json`): ``regions`` and ``fov``.

    Returns
    -------
    numpy.ndarray, shape (H, W), float32 in [0, 1]
    """
    w = np.ones(spec.size, dtype=np.float32)
    regions = quality.get("regions", {})
    excluded = [k for k, r in enumerate(REGIONS) if regions.get(r, {}).get("status") == "excluded"]
    if excluded:
        lab = pixel_labels(spec, face_height, head_points)
        w[np.isin(lab, excluded)] = 0.0
    fov = quality.get("fov")
    if fov:
        x, y = spec.xy_grid()
        fin = np.isfinite(face_height)
        z = np.where(fin, face_height, np.nanmedian(face_height) if fin.any() else 0.0)
        pts = np.stack([x, y, z], axis=-1).reshape(-1, 3)
        ok = in_view(np.asarray(fov["head_to_index"], dtype=np.float64), fov["shape"], pts, FOV_MARGIN_VOXELS)
        w[~ok.reshape(spec.size)] = 0.0
    return w


def save_weight(path: str | Path, weight: np.ndarray) -> None:
    """Write ``weight`` (float32 (H, W)) as ``path`` (.npz, key ``weight``), atomically."""
    from ..io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, weight=np.asarray(weight, dtype=np.float32))
