"""How heights in mm become the values a network sees, and back: ONE implementation.

Knyaz et al. (2020) feed their networks depth maps normalised to [0, 1] and raised to a power
``k`` (4 in the paper), which stretches the front of the face, where the detail is:

    u = (z - z_near) / (z_far - z_near)        linear depth, in [0, 1]
    v = clip(u, 0, 1) ** k                     the network value

The residual generator (see `skull2face.model.cgan`) does not predict ``v`` itself but a
soft-tissue thickness above a base surface B (the filled skull, mm):

    face height (mm) = B + thickness_min_mm + o * thickness_range_mm,   o in [0, 1]

Every function here is plain arithmetic on array methods that numpy arrays and torch tensors
share (``+ - * / **`` and ``.clip``), so the same code runs on both: numpy in
`skull2face.geometry.depthmap`, `skull2face.dataset.reader` and prediction, torch (with
gradients) in training. Nothing is converted: the caller picks the dtype (float64 numpy for
exact maps, float32 tensors in training) and handles NaN / masks. This module imports neither
numpy nor torch; it lives in ``geometry`` (the lowest layer that knows depth maps) so that
``geometry.depthmap`` may use it and so may every layer above (``model``, ``dataset``,
``training``, ``stages``), without ``geometry`` ever importing torch.
"""

from __future__ import annotations

from typing import Any, TypeVar

Array = TypeVar("Array")  # a numpy.ndarray or a torch.Tensor; outputs have the input's kind


def from_linear(u: Array, k: float, lo: float = 0.0) -> Array:
    """Linear depth ``u`` (in [0, 1] of the depth range) to network values ``clip(u, lo, 1) ** k``.

    Parameters
    ----------
    u : numpy.ndarray or torch.Tensor, any shape
        Linear depth; values outside ``[lo, 1]`` are clipped first.
    k : float
        Depth exponent (> 0).
    lo : float
        Lower clip bound: 0, or a small ``eps`` where the gradient of the power must stay finite
        (``k < 1``).

    Returns
    -------
    numpy.ndarray or torch.Tensor, same shape and kind, in ``[lo ** k, 1]``
    """
    return u.clip(lo, 1.0) ** k


def to_linear(values: Array, k: float, lo: float = 0.0) -> Array:
    """Network values to linear depth, ``clip(values, lo, 1) ** (1 / k)`` (inverse of `from_linear`).

    Parameters
    ----------
    values : numpy.ndarray or torch.Tensor, any shape
        Network values ``u ** k``.
    k : float
        Depth exponent (> 0).
    lo : float
        Lower clip bound: 0, or a small ``eps``: the derivative of ``v ** (1 / k)`` is infinite
        at ``v = 0``.

    Returns
    -------
    numpy.ndarray or torch.Tensor, same shape and kind, in ``[lo ** (1 / k), 1]``
    """
    return values.clip(lo, 1.0) ** (1.0 / k)


def normalise(height_mm: Array, z_near: float, z_far: float, k: float, lo: float = 0.0) -> Array:
    """Heights (mm) to network values: ``clip((z - z_near) / (z_far - z_near), lo, 1) ** k``.

    Parameters
    ----------
    height_mm : numpy.ndarray or torch.Tensor, any shape, mm
        Head-frame z. NaN stays NaN (the caller masks it).
    z_near, z_far : float, mm
        The depth range (``RenderSpec.z_near``, ``RenderSpec.z_far``).
    k : float
        Depth exponent (> 0).
    lo : float
        Lower clip bound of the linear depth (see `from_linear`).

    Returns
    -------
    numpy.ndarray or torch.Tensor, same shape and kind, in ``[lo ** k, 1]``
    """
    z_near, z_far = float(z_near), float(z_far)
    return from_linear((height_mm - z_near) / (z_far - z_near), k, lo)


def denormalise(values: Array, z_near: float, z_far: float, k: float, lo: float = 0.0) -> Array:
    """Network values to heights (mm): ``z_near + clip(v, lo, 1) ** (1 / k) * (z_far - z_near)``.

    The exact inverse of `normalise` for heights within ``[z_near, z_far]``.

    Parameters
    ----------
    values : numpy.ndarray or torch.Tensor, any shape
        Network values.
    z_near, z_far : float, mm
    k : float
        Depth exponent (> 0).
    lo : float
        Lower clip bound (see `to_linear`); with ``lo > 0`` the result is differentiable everywhere.

    Returns
    -------
    numpy.ndarray or torch.Tensor, same shape and kind, mm in ``[z_near, z_far]``
    """
    z_near, z_far = float(z_near), float(z_far)
    return z_near + to_linear(values, k, lo) * (z_far - z_near)


def residual_height(o: Array, base_mm: Array, thickness_min_mm: float, thickness_range_mm: float) -> Array:
    """Face height (mm, unclipped) of a residual generator output: ``B + t_min + o * t_range``.

    Parameters
    ----------
    o : numpy.ndarray or torch.Tensor, shape (..., H, W), in [0, 1]
        The generator's ``face`` output, read as soft-tissue thickness
        ``thickness_min_mm + o * thickness_range_mm``.
    base_mm : same kind, same shape, mm
        The base surface B: the filled skull (`skull2face.geometry.fill.filled_height`).
    thickness_min_mm, thickness_range_mm : float, mm

    Returns
    -------
    numpy.ndarray or torch.Tensor, same shape, mm
    """
    return base_mm + thickness_min_mm + o * thickness_range_mm


def residual_face(o: Array, filled_mm: Array, thickness_range_mm: float, z_near: float, z_far: float, k: float,
                  eps: float = 1e-6, thickness_min_mm: float = 0.0) -> Array:
    """Normalised face map of a residual generator output (differentiable in ``o``).

    Parameters
    ----------
    o : torch.Tensor or numpy.ndarray, shape (B, 1, H, W), in [0, 1]
        The generator's ``face`` output, read as soft-tissue thickness
        ``thickness_min_mm + o * thickness_range_mm``.
    filled_mm : same kind and shape, mm
        The filled skulls (the base surface).
    thickness_range_mm, z_near, z_far, k, eps, thickness_min_mm : float

    Returns
    -------
    torch.Tensor or numpy.ndarray, same shape, in [eps ** k, 1]
        ``clamp(u, eps, 1) ** k`` with ``u = (filled_mm + thickness - z_near) / (z_far - z_near)``:
        the face ``filled + thickness`` in the dataset's normalised units
        (the clamp keeps the derivative of the power finite for ``k < 1``).
    """
    return normalise(residual_height(o, filled_mm, thickness_min_mm, thickness_range_mm), z_near, z_far, k, lo=eps)


def face_height(o: Array, base_mm: Any, *, residual: bool, z_near: float, z_far: float, k: float,
                thickness_min_mm: float | None = None, thickness_range_mm: float | None = None) -> Array:
    """The generator's ``face`` output in mm: what validation and prediction read.

    Parameters
    ----------
    o : numpy.ndarray or torch.Tensor, shape (..., H, W), in [0, 1]
        The generator's ``face`` output.
    base_mm : same kind and shape, mm, or None
        The filled skull (residual mode only; None otherwise).
    residual : bool
        True: ``o`` is a thickness above ``base_mm`` (`residual_height`), clipped to
        ``[z_near, z_far]`` as the training losses see it; False: ``o`` is a normalised height
        (`denormalise`).
    z_near, z_far : float, mm
    k : float
        Depth exponent of the normalised maps.
    thickness_min_mm, thickness_range_mm : float, mm
        Residual mode only.

    Returns
    -------
    numpy.ndarray or torch.Tensor, same shape, mm in ``[z_near, z_far]``
    """
    if residual:
        return residual_height(o, base_mm, thickness_min_mm, thickness_range_mm).clip(z_near, z_far)
    return denormalise(o, z_near, z_far, k)


def rescale_px(px: Array, from_size: int, to_size: int) -> Array:
    """Convert pixel positions between resolutions of the same image.

    Pixel ``(r, c)`` has its centre at integer coordinates, so ``p' = (p + 0.5) * to / from - 0.5``;
    this matches maps downsampled by average pooling (staged training).

    Parameters
    ----------
    px : numpy.ndarray or torch.Tensor, shape (..., 2), pixels (row, col)
    from_size, to_size : int
        Side of the image the positions refer to, and of the image they should refer to (for
        a non-square image: its height, when both sides change by the same factor).

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (..., 2), pixels
        Same kind and dtype as ``px``.
    """
    return (px + 0.5) * (to_size / from_size) - 0.5


__all__ = [
    "denormalise",
    "face_height",
    "from_linear",
    "normalise",
    "residual_face",
    "residual_height",
    "rescale_px",
    "to_linear",
]
