"""A depth map at a coarser resolution: block means over the valid pixels.

One rule serves the training data (`skull2face.dataset.reader.downsample_map`, on linear
depth) and the reference maps stored in a model bundle (`skull2face.stages.export.make_bundle`,
on heights in mm): a block is valid when more than half of its pixels are (so a silhouette
neither grows nor shrinks on average), and its value is the mean of its valid pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def block_mean(values: Any, valid: Any, factor: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each ``factor`` block's valid pixels.

    Parameters
    ----------
    values : array_like, shape (..., H, W), float
        Any units (mm, linear depth); invalid pixels may hold anything, NaN included.
    valid : array_like, shape (..., H, W), bool or {0, 1}
    factor : (int, int)
        Block height and width; they must divide H and W.

    Returns
    -------
    mean : numpy.ndarray, shape (..., H / fh, W / fw), float64
        The mean of the block's valid pixels (0 where it has none).
    valid : numpy.ndarray, same shape, bool
        More than half of the block's pixels are valid.

    Raises
    ------
    ValueError
        When the block does not divide the map.
    """
    fh, fw = factor
    values = np.asarray(values, dtype=np.float64)
    *lead, h, w = values.shape
    if h % fh or w % fw:
        raise ValueError(f"block {tuple(factor)} does not divide the map size {(h, w)}")
    v = values.reshape(*lead, h // fh, fh, w // fw, fw)
    m = np.asarray(valid).astype(bool).reshape(v.shape)
    count = m.sum(axis=(-3, -1))
    mean = np.where(m, v, 0.0).sum(axis=(-3, -1)) / np.maximum(count, 1)
    return mean, count > fh * fw / 2


def block_mean_mm(height: Any, res: int) -> np.ndarray:
    """A height map at ``res`` x ``res``: each block's mean where more than half of it is valid.

    Parameters
    ----------
    height : array_like, shape (H, W), float, mm, NaN off the surface
        H and W multiples of ``res``.
    res : int

    Returns
    -------
    numpy.ndarray, shape (res, res), float32, NaN where a block is not valid
    """
    height = np.asarray(height)
    h, w = height.shape
    if h % res or w % res:
        raise ValueError(f"map size {(h, w)} is not a multiple of {res}")
    if h == w == res:
        return height.astype(np.float32)
    mean, valid = block_mean(height, np.isfinite(height), (h // res, w // res))
    return np.where(valid, mean, np.nan).astype(np.float32)
