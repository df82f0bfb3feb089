"""Losses of the skull2face GAN: adversarial, masked L1 and the anthropological loss L_A.

The paper's objective is ``min_G max_D L_cGAN + lambda_1 L1 + lambda_2 L_A``; L1 applies to
paired samples, L_A to every sample whose skull carries landmarks (in particular the unpaired
ones, where it keeps the generator from collapsing). Maps are float32 (B, 1, H, W) as
described in `skull2face.model`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..geometry import codec


def gan_loss(pred_logits: torch.Tensor, target_is_real: bool, mode: str = "lsgan") -> torch.Tensor:
    """Adversarial loss of discriminator logits against an all-real or all-fake target.

    Parameters
    ----------
    pred_logits : torch.Tensor, any shape (typically (B, 1, h, w) patch logits), float32
        Raw discriminator outputs.
    target_is_real : bool
        True to score against "real" (D on real data, or G fooling D), False against "fake".
    mode : {"lsgan", "vanilla"}
        "lsgan": mean squared error to 1 (real) or 0 (fake) (Mao et al. 2017).
        "vanilla": binary cross-entropy with logits (Goodfellow et al. 2014).

    Returns
    -------
    torch.Tensor, scalar float32
        Mean over all elements.
    """
    target = torch.full_like(pred_logits, 1.0 if target_is_real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(pred_logits, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(pred_logits, target)
    raise ValueError(f"mode must be 'lsgan' or 'vanilla', got {mode!r}")


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over valid pixels, pooled over the whole batch.

    Parameters
    ----------
    pred, target : torch.Tensor, shape (B, C, H, W), float32
        Predicted and true maps (normalised units).
    mask : torch.Tensor, broadcastable to ``pred``, float32 in [0, 1]
        Validity (usually the true face mask); fractional values act as weights.

    Returns
    -------
    torch.Tensor, scalar float32
        ``sum(|pred - target| * mask) / sum(mask)`` (the mask broadcast to ``pred``'s shape);
        0 when the mask is empty, still attached to the graph so ``backward`` works.
    """
    mask = mask.to(pred.dtype).expand_as(pred)
    return ((pred - target).abs() * mask).sum() / mask.sum().clamp_min(1e-8)


def make_denormalise(
    z_near: float, z_far: float, k: float = 4.0, eps: float = 1e-6
) -> Callable[[torch.Tensor], torch.Tensor]:
    """`skull2face.geometry.codec.denormalise` for one depth range, differentiable everywhere.

    Parameters
    ----------
    z_near, z_far : float, mm
        The depth range used to normalise (``RenderSpec.z_near``, ``RenderSpec.z_far``).
    k : float
        The exponent used to normalise.
    eps : float
        Values are clamped to ``[eps, 1]`` first: the derivative of ``v ** (1 / k)`` is infinite
        at ``v = 0``.

    Returns
    -------
    callable
        Maps a tensor of normalised values to heights in mm,
        ``z_near + clamp(v, eps, 1) ** (1 / k) * (z_far - z_near)``.
    """

    def denormalise(v: torch.Tensor) -> torch.Tensor:
        return codec.denormalise(v, z_near, z_far, k, lo=eps)

    return denormalise


def anthropological_loss(
    face_pred: torch.Tensor,
    landmark_px: torch.Tensor,
    target_height: torch.Tensor,
    valid: torch.Tensor,
    denormalise: Callable[[torch.Tensor], torch.Tensor] | None = None,
    norm: str = "l1",
) -> torch.Tensor:
    """The paper's L_A = mean_i ||f_i - (s_i + t_i)||, differentiable in the face map.

    For each skull landmark s_i with published soft-tissue thickness t_i along the bone normal
    n_i, the caller projects the expected skin point p_i = s_i + t_i n_i into the image: its pixel
    position ``landmark_px[b, i] = (row, col)`` and its normalised (powered) height
    ``target_height[b, i]``. The predicted face map is sampled at (row, col) by bilinear
    interpolation, so the face point f_i is taken at the same x, y as p_i and
    ``||f_i - p_i|| = |z(f_i) - z(p_i)|``: the distance along the viewing axis.

    Parameters
    ----------
    face_pred : torch.Tensor, shape (B, 1, H, W), float32
        Predicted face map (normalised units). Gradients flow to it.
    landmark_px : torch.Tensor, shape (B, L, 2), float32, pixels
        (row, col) of each p_i; pixel centres are at integer coordinates, (0, 0) is the top-left
        pixel's centre. Positions outside ``[0, H-1] x [0, W-1]`` count as invalid. Use
        `skull2face.geometry.codec.rescale_px` when the map is at another resolution than the
        positions.
    target_height : torch.Tensor, shape (B, L), float32
        Normalised height of p_i, the value the face map should take there.
    valid : torch.Tensor, shape (B, L), bool or {0, 1} float
        Which landmarks take part (known landmark, known thickness, inside the map).
    denormalise : callable, optional
        Differentiable map from normalised values to heights in mm (e.g. `make_denormalise`),
        applied to both the sampled prediction and the target before comparing. Without it the
        loss is in normalised units, which distort distances: with k = 4 the height is
        ``z_near + v ** (1/4) (z_far - z_near)``, so an error of 0.001 costs ~0.12 mm at v = 0.3
        (the front of the face) but ~1.6 mm at v = 0.01 (the cheek near the ear), for a
        200 mm range. Comparing in mm weighs every landmark by its real error.
    norm : {"l1", "l2"}
        "l1": mean of ``|difference|`` (the paper's Euclidean distance, which here is along one
        axis); "l2": mean of ``difference ** 2``.

    Returns
    -------
    torch.Tensor, scalar float32
        Mean over valid landmarks of the whole batch; 0 (attached to the graph) when none is
        valid. Exactly 0 when the face map takes the target values at the landmark positions.
    """
    if face_pred.dim() != 4 or face_pred.shape[1] != 1:
        raise ValueError(f"face_pred must be (B, 1, H, W), got {tuple(face_pred.shape)}")
    b, _, h, w = face_pred.shape
    if (
        landmark_px.shape[:1] != (b,)
        or landmark_px.shape[-1] != 2
        or target_height.shape != landmark_px.shape[:2]
    ):
        raise ValueError(
            f"landmark_px must be (B, L, 2) and target_height (B, L), got {tuple(landmark_px.shape)} "
            f"and {tuple(target_height.shape)}"
        )
    if norm not in ("l1", "l2"):
        raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
    px = landmark_px.to(face_pred.dtype)
    row, col = px[..., 0], px[..., 1]
    inside = (row >= 0) & (row <= h - 1) & (col >= 0) & (col <= w - 1) & torch.isfinite(px).all(-1)
    weight = (valid.to(torch.bool) & inside).to(face_pred.dtype)
    # grid_sample wants (x, y) = (col, row) in [-1, 1]; with align_corners=True, -1 and 1 are the
    # centres of the first and last pixels.
    x = 2.0 * col / max(w - 1, 1) - 1.0
    y = 2.0 * row / max(h - 1, 1) - 1.0
    grid = torch.stack([x, y], dim=-1).nan_to_num(0.0).unsqueeze(2)  # (B, L, 1, 2)
    sampled = F.grid_sample(face_pred, grid, mode="bilinear", padding_mode="border", align_corners=True)
    sampled = sampled[:, 0, :, 0]  # (B, L)
    target = target_height.to(face_pred.dtype)
    if denormalise is not None:
        sampled, target = denormalise(sampled), denormalise(target)
    diff = torch.where(weight > 0, sampled - target, torch.zeros_like(sampled))  # NaN-safe
    err = diff.abs() if norm == "l1" else diff.square()
    return err.sum() / weight.sum().clamp_min(1.0)
