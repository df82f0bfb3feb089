"""``mean-face``: the mean training face in the head frame, put on the target skull.

Heights are float32 head-frame z in mm (NaN off the surface). Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..geometry.depthmap import DepthMap, RenderSpec
from .references import resample_to


def mean_face(train_face_maps: Sequence[DepthMap], min_fraction: float = 0.5) -> DepthMap:
    """The mean training face in the head frame.

    Parameters
    ----------
    train_face_maps : sequence of DepthMap
        Face maps of one dataset (same size, pitch, depth range and centre; their frames
        differ per head and do not matter here: heights are already head-frame z).
    min_fraction : float
        A pixel is kept when at least this fraction of the maps is valid there (0.5: at least
        half).

    Returns
    -------
    DepthMap
        Mean height over the maps valid at each kept pixel (float32 mm), NaN elsewhere; spec
        of the first map.

    Raises
    ------
    ValueError
        If the list is empty or the maps' grids differ.
    """
    maps = list(train_face_maps)
    if not maps:
        raise ValueError("mean_face needs at least one face map")
    ref = maps[0].spec
    total = np.zeros(ref.size)
    count = np.zeros(ref.size)
    for dm in maps:
        sp = dm.spec
        if sp.size != ref.size or sp.mm_per_px != ref.mm_per_px or sp.centre != ref.centre:
            raise ValueError("mean_face: the maps do not share one pixel grid (size, mm_per_px, centre)")
        total += np.where(dm.mask, dm.height, 0.0)
        count += dm.mask
    keep = count >= max(min_fraction * len(maps), 1e-9)
    keep &= count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(keep, total / np.maximum(count, 1), np.nan).astype(np.float32)
    return DepthMap(mean, np.isfinite(mean), ref)


def mean_face_for(spec: RenderSpec, mean_map: DepthMap, info: dict | None = None) -> DepthMap:
    """The mean face placed on a target skull: `mean_map` relabelled with the target's spec.

    Parameters
    ----------
    spec : RenderSpec
        The target skull map's spec.
    mean_map : DepthMap
        From `mean_face`.
    info : dict, optional
        Filled with a JSON-ready record.

    Returns
    -------
    DepthMap
        With ``spec`` as its spec (resampled if its grid differs, see `resample_to`).
    """
    record = {} if info is None else info
    record.update({"method": "mean-face", "valid_px": int(mean_map.mask.sum())})
    return resample_to(mean_map, spec)


__all__ = ["mean_face", "mean_face_for"]
