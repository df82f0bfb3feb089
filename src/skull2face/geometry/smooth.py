"""Gaussian smoothing of a map with holes: NaN pixels neither count nor get filled.

Normalised convolution: the Gaussian of the valid values divided by the Gaussian of the valid
mask, so a pixel near a hole or the map's edge is the weighted mean of the valid pixels around
it, never pulled towards 0. ``mode`` is `scipy.ndimage.gaussian_filter`'s edge mode: the
thickness prior smooths with its default ``"reflect"``; ``"nearest"`` repeats the edge pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage


def nan_gaussian(values: Any, sigma_px: float, mode: str = "reflect") -> np.ndarray:
    """Gaussian smoothing that ignores NaN pixels (normalised convolution); NaN stays NaN.

    Parameters
    ----------
    values : array_like, shape (H, W), float
        Any units; NaN (or infinite) where there is no value.
    sigma_px : float
        The Gaussian's sigma in pixels; 0 or less returns the values unchanged.
    mode : str
        Edge mode of `scipy.ndimage.gaussian_filter` (``"reflect"``, ``"nearest"``, ...).

    Returns
    -------
    numpy.ndarray, shape (H, W), float64
        The smoothed values at the valid pixels, NaN elsewhere.
    """
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    if sigma_px <= 0 or not ok.any():
        return np.where(ok, values, np.nan)
    num = ndimage.gaussian_filter(np.where(ok, values, 0.0), sigma_px, mode=mode)
    den = ndimage.gaussian_filter(ok.astype(np.float64), sigma_px, mode=mode)
    return np.where(ok, num / np.maximum(den, 1e-9), np.nan)


__all__ = ["nan_gaussian"]
