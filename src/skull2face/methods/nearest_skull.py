"""``nearest-skull``: the face of the training pair whose skull map is nearest to the target's.

Heights are float32 head-frame z in mm (NaN off the surface). Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..geometry.depthmap import DepthMap
from .references import resample_to


def skull_distance(a: DepthMap, b: DepthMap, mismatch_mm: float = 10.0) -> float:
    """RMS height difference (mm) of two skull maps, with non-overlap penalised.

    Over the union of the two masks: pixels valid in both contribute their height difference,
    pixels valid in only one contribute ``mismatch_mm``::

        d = sqrt((sum_both (h_a - h_b)^2 + n_one * mismatch^2) / n_union)

    Parameters
    ----------
    a, b : DepthMap
        On the same pixel grid.
    mismatch_mm : float

    Returns
    -------
    float
        mm; inf when neither map has a valid pixel.
    """
    if a.spec.size != b.spec.size:
        raise ValueError(f"skull maps differ in size: {a.spec.size} vs {b.spec.size}")
    both = a.mask & b.mask
    one = a.mask ^ b.mask
    n_union = int(both.sum() + one.sum())
    if n_union == 0:
        return math.inf
    d = (a.height[both].astype(np.float64) - b.height[both].astype(np.float64))
    return float(math.sqrt((float(np.einsum("i,i->", d, d)) + one.sum() * mismatch_mm ** 2) / n_union))


def nearest_skull_face(skull_map: DepthMap, train_pairs: Sequence[tuple[DepthMap, DepthMap]],
                       mismatch_mm: float = 10.0, info: dict | None = None) -> DepthMap:
    """The face of the training pair whose skull map is nearest to ``skull_map``.

    Parameters
    ----------
    skull_map : DepthMap
        The target skull.
    train_pairs : sequence of (DepthMap, DepthMap)
        (skull, face) maps of training heads, on the target's pixel grid (skull maps of other
        grids are resampled to it before comparing).
    mismatch_mm : float
        Penalty per non-overlapping pixel, see `skull_distance`.
    info : dict, optional
        Filled with ``{"method", "index", "distance_mm", "distances_mm"}``.

    Returns
    -------
    DepthMap
        The chosen face, with the TARGET's spec (which pair, at what distance: ``info``).

    Raises
    ------
    ValueError
        If ``train_pairs`` is empty.
    """
    pairs = list(train_pairs)
    if not pairs:
        raise ValueError("nearest_skull_face needs at least one training pair")
    dists = [skull_distance(skull_map, resample_to(sk, skull_map.spec), mismatch_mm) for sk, _face in pairs]
    best = int(np.argmin(dists))
    record = {} if info is None else info
    record.update({"method": "nearest-skull", "index": best, "distance_mm": round(dists[best], 4),
                   "distances_mm": [round(d, 4) for d in dists], "mismatch_mm": mismatch_mm})
    return resample_to(pairs[best][1], skull_map.spec)


__all__ = ["nearest_skull_face", "skull_distance"]
