"""Stacked dataset arrays: block-mean downsampling for staged training, subsets, and the
generator's input (torch-free). The arrays are `skull2face.dataset.reader.load_arrays` output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..geometry import codec
from ..geometry.resample import block_mean

# Keys of `load_arrays` output that hold one entry per sample (axis 0), as opposed to the
# dataset-wide scalars and ``la_names``.
PER_SAMPLE_KEYS = (
    "id", "kind", "split", "source_head", "real", "has_skull", "has_face",
    "skull", "skull_mask", "face", "face_mask", "la_px", "la_height", "la_valid", "fit", "fit_mask", "has_fit",
    "face_weight", "head_weight",
)
# Maps that are downsampled alike (normalised heights + mask).
MAP_PARTS = ("skull", "face", "fit")


def downsample_map(
    values: np.ndarray, mask: np.ndarray, factor: tuple[int, int], k: float
) -> tuple[np.ndarray, np.ndarray]:
    """Block-average normalised maps over their valid pixels.

    Parameters
    ----------
    values : numpy.ndarray, shape (..., H, W), float32
        Normalised heights ``u ** k``.
    mask : numpy.ndarray, shape (..., H, W), float32 {0, 1} or bool
    factor : (int, int)
        Block height and width; they must divide H and W.
    k : float
        The exponent of ``values``.

    Returns
    -------
    values, mask : numpy.ndarray, shape (..., H / fh, W / fw), float32
        A block is valid when more than half of its pixels are (so the silhouette neither
        grows nor shrinks on average); its value is the mean height of its valid pixels,
        normalised again. 0 where invalid.
    """
    fh, fw = factor
    *lead, h, w = values.shape
    if h % fh or w % fw:
        raise ValueError(f"block {factor} does not divide the map size {(h, w)}")
    if (fh, fw) == (1, 1):
        return values.astype(np.float32), mask.astype(np.float32)
    # Average the linear depth u = v ** (1 / k), which is proportional to millimetres: the mean
    # of the powered values would bias every block towards its highest pixel.
    mean_u, valid = block_mean(codec.to_linear(values.astype(np.float64), k), mask > 0.5, factor)
    return np.where(valid, codec.from_linear(mean_u, k), 0.0).astype(np.float32), valid.astype(np.float32)


def downsample_arrays(arrays: Mapping[str, np.ndarray], size: int | tuple[int, int]) -> dict[str, np.ndarray]:
    """Copy of `load_arrays` output at a lower resolution (staged training).

    Maps are block-averaged by `downsample_map`; landmark pixel positions are rescaled like
    `skull2face.geometry.codec.rescale_px` (so they keep pointing at the same head-frame x, y);
    target heights and validity flags are unchanged (`anthropological_loss` ignores positions
    that fall outside the image); ``mm_per_px`` grows by the factor; ``centre`` stays (the
    blocks tile the image symmetrically about it).

    Parameters
    ----------
    arrays : dict
        `load_arrays` output.
    size : int or (int, int)
        Target (H', W'): the current (H, W) divided by one integer factor.

    Returns
    -------
    dict of str to numpy.ndarray
        The same keys; per-sample metadata is shared, not copied.
    """
    h, w = (int(v) for v in arrays["size"])
    th, tw = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if th < 1 or tw < 1 or h % th or w % tw or h // th != w // tw:
        # One factor for both axes: pixels stay square, so one mm_per_px still describes them.
        raise ValueError(f"size {(th, tw)} must divide the arrays' size {(h, w)} by one integer factor")
    factor = (h // th, w // tw)
    out = dict(arrays)
    if factor == (1, 1):
        return out
    k = float(arrays["k"])
    for part in MAP_PARTS:
        if part not in arrays:
            continue
        out[part], out[f"{part}_mask"] = downsample_map(arrays[part], arrays[f"{part}_mask"], factor, k)
    if "face_weight" in arrays:  # a block counts as much as its pixels on average
        wt = arrays["face_weight"]
        out["face_weight"] = block_mean(wt, np.ones(wt.shape, bool), factor)[0].astype(np.float32)
    # In float64, then back to the positions' dtype (float32): one rounding.
    out["la_px"] = codec.rescale_px(arrays["la_px"].astype(np.float64), h, th).astype(arrays["la_px"].dtype)
    out["size"] = np.array([th, tw], np.int64)
    out["mm_per_px"] = np.asarray(float(arrays["mm_per_px"]) * factor[1], np.float64)
    return out


def network_input(arrays: Mapping[str, np.ndarray], with_fit: bool) -> np.ndarray:
    """What the generator sees: ``concat(skull, skull_mask[, fit])`` along axis 1.

    Parameters
    ----------
    arrays : dict
        `load_arrays`-style arrays (``skull``, ``skull_mask``, and ``fit`` when ``with_fit``),
        (N, 1, H, W) float32 each.
    with_fit : bool
        Add the fitted face (the base of a ``base="fit"`` generator).

    Returns
    -------
    numpy.ndarray, shape (N, 2 or 3, H, W), float32
    """
    parts = [arrays["skull"], arrays["skull_mask"]] + ([arrays["fit"]] if with_fit else [])
    return np.concatenate(parts, axis=1).astype(np.float32)


def subset(arrays: Mapping[str, np.ndarray], index: Any) -> dict[str, np.ndarray]:
    """Select samples (axis 0 of every per-sample key) by a boolean mask or index array."""
    return {key: (value[index] if key in PER_SAMPLE_KEYS else value) for key, value in arrays.items()}


__all__ = ["MAP_PARTS", "PER_SAMPLE_KEYS", "downsample_arrays", "downsample_map", "network_input", "subset"]
