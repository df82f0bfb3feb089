"""Validation of a training run on the real held-out head(s), in mm.

The prediction at the current stage's resolution is converted to mm (the same
`skull2face.geometry.codec.face_height` prediction uses), upsampled bilinearly to the final
resolution and compared with the true face height over the true face mask: mean absolute
error, RMSE and the fraction of pixels within `WITHIN_MM`. The baseline predicts, for every
head, the mean training face map (`skull2face.training.data.Data.baseline_mm`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..dataset.reader import network_input
from ..geometry import codec
from ..model import UNetGenerator

WITHIN_MM = 2.5  # "close enough" threshold of the validation report, mm
# Keys `validate` adds to a metrics line.
VAL_KEYS = ("val_mae_mm", "val_rmse_mm", "val_within_2_5mm", "val_pixels", "val_mask_iou", "val_per_sample_mae_mm")


def height_errors(pred_mm: torch.Tensor, true_mm: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """MAE, RMSE (mm) and fraction within `WITHIN_MM` over ``mask`` (all tensors (N, 1, R, R))."""
    m = mask > 0.5
    n = int(m.sum())
    if n == 0:
        return {"mae_mm": float("nan"), "rmse_mm": float("nan"), "within_2_5mm": float("nan"), "pixels": 0}
    d = (pred_mm - true_mm)[m].double()
    return {"mae_mm": float(d.abs().mean()), "rmse_mm": float(d.square().mean().sqrt()),
            "within_2_5mm": float((d.abs() <= WITHIN_MM).double().mean()), "pixels": n}


def _true_mm(val_final: dict[str, np.ndarray]) -> torch.Tensor:
    z_near, z_far, k = float(val_final["z_near"]), float(val_final["z_far"]), float(val_final["k"])
    return codec.denormalise(torch.from_numpy(val_final["face"]), z_near, z_far, k)


@torch.no_grad()
def validate(g: UNetGenerator, val_stage: dict[str, np.ndarray], val_final: dict[str, np.ndarray],
             alpha: float, device: torch.device, batch: int,
             thickness_mm: tuple[float, float] | None = None, with_fit: bool = False) -> dict[str, Any]:
    """Validation metrics of the generator at the current stage, measured at the final resolution.

    Parameters
    ----------
    g : UNetGenerator
        Put in eval mode for the passes, then back in its mode.
    val_stage, val_final : dict
        `load_arrays`-style validation arrays at the stage's and at the final resolution. In
        residual mode ``val_stage["fill"]`` holds the base surfaces (mm, `skull2face.training.data.base_mm`).
    alpha : float
        Fade-in weight of the newest generator level.
    device : torch.device
    batch : int
        Samples per generator pass.
    thickness_mm : (float, float), optional
        Residual mode: ``(thickness_min_mm, thickness_range_mm)`` of the generator's output;
        None: the generator predicts normalised face heights.
    with_fit : bool
        The generator also sees the fitted face (`skull2face.dataset.reader.network_input`).

    Returns
    -------
    dict
        The `VAL_KEYS`: ``val_mae_mm``, ``val_rmse_mm``, ``val_within_2_5mm``, ``val_pixels``,
        ``val_mask_iou`` (predicted face mask vs true) and ``val_per_sample_mae_mm`` (by id).
    """
    z_near, z_far, k = float(val_final["z_near"]), float(val_final["z_far"]), float(val_final["k"])
    res = int(val_final["size"][0])
    x_all = torch.from_numpy(network_input(val_stage, with_fit))
    fill_all = torch.from_numpy(val_stage["fill"]) if thickness_mm is not None else None
    t_min, t_range = thickness_mm if thickness_mm is not None else (None, None)
    preds, logits = [], []
    was_training = g.training
    g.eval()
    for i in range(0, x_all.shape[0], batch):
        out = g(x_all[i:i + batch].to(device), alpha)
        # The face the training losses see, in mm (residual: filled skull + thickness, within
        # the depth range).
        fill = fill_all[i:i + batch].to(device) if fill_all is not None else None
        mm = codec.face_height(out.face, fill, residual=fill is not None, z_near=z_near, z_far=z_far, k=k,
                               thickness_min_mm=t_min, thickness_range_mm=t_range)
        logit = out.mask_logit
        if mm.shape[-1] != res:
            # Upsample in mm (linear depth), not in powered units.
            mm = F.interpolate(mm, size=(res, res), mode="bilinear")
            logit = F.interpolate(logit, size=(res, res), mode="bilinear")
        preds.append(mm.cpu())
        logits.append(logit.cpu())
    g.train(was_training)
    pred = torch.cat(preds)
    pred_mask = torch.cat(logits) > 0
    true = _true_mm(val_final)
    mask = torch.from_numpy(val_final["face_mask"])
    out = {f"val_{key}": v for key, v in height_errors(pred, true, mask).items()}
    truth = mask > 0.5
    inter = (pred_mask & truth).sum().item()
    union = (pred_mask | truth).sum().item()
    out["val_mask_iou"] = inter / union if union else float("nan")
    out["val_per_sample_mae_mm"] = {
        str(sid): height_errors(pred[i:i + 1], true[i:i + 1], mask[i:i + 1])["mae_mm"]
        for i, sid in enumerate(val_final["id"])
    }
    return out


def baseline_errors(baseline_mm: np.ndarray, val_final: dict[str, np.ndarray]) -> dict[str, Any]:
    """``baseline_mae_mm``, ``baseline_rmse_mm``, ``baseline_within_2_5mm`` of the mean training face.

    Empty without validation heads.
    """
    if len(val_final["id"]) == 0:
        return {}
    true = _true_mm(val_final)
    pred = torch.from_numpy(baseline_mm).to(true.dtype).expand_as(true)
    errs = height_errors(pred, true, torch.from_numpy(val_final["face_mask"]))
    return {f"baseline_{key}": v for key, v in errs.items() if key != "pixels"}


__all__ = ["VAL_KEYS", "WITHIN_MM", "baseline_errors", "height_errors", "validate"]
