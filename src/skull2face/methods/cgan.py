"""``skull2face``: the paper's conditional GAN, as a correction of the fitted whole head.

A trained generator (``skull2face train``; a model file of ``skull2face export``) sees the skull
map (and, for a ``base="fit"`` generator, the face-model fit's map) and returns a face map
(`generator_face`). With the fit as its base, the method (`cgan_face`) returns the fitted WHOLE
head moved by the generator's correction where the frontal map sees it, tapered at the map's
edges and shrunk per face region by the gains the model file learnt on leave-one-head-out folds
(`skull2face.methods.correction`): a closed head with eyes, nose, lips, ears and the back of
the head, and a correction that made no held-out fold worse. A model file without such gains
(no folds) applies none of the correction: its face is the fit's, and its record says so.

`calibrate` measures one fold: the generator's correction on the real held-out heads of the
dataset it was trained without (``split == "test"``), per region (`correction.region_sums`).

The model is loaded by the caller (`skull2face.stages.predict`) and handed in as a
`TrainedModel`; this module reads no model file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..geometry import codec
from ..geometry.depthmap import DepthMap, RenderSpec, load_depthmap, normalise, render
from ..geometry.frame import apply
from ..geometry.resample import block_mean_mm
from . import correction as corr
from .result import MethodResult


@dataclass(frozen=True)
class TrainedModel:
    """A loaded model file.

    Attributes
    ----------
    generator : torch.nn.Module
        `skull2face.model.networks.UNetGenerator`, on the CPU, in eval mode.
    meta : skull2face.training.meta.ModelMeta
    calibration : dict or None
        ``{"gains": {region: g}, "folds": [...], "rule": str}`` (`skull2face.stages.export`);
        None: no folds, the correction is not trusted anywhere.
    references : dict or None
        The baselines' reference maps and the thickness prior of a bundle.
    """

    generator: Any
    meta: Any
    calibration: dict | None = None
    references: dict | None = field(default=None, repr=False)


def generator_face(g: Any, meta: Any, skull_map: DepthMap, fit_map: DepthMap | None = None) -> DepthMap:
    """Run the generator on a skull map; the face map comes back in the same spec (mm).

    The output is read by `skull2face.geometry.codec.face_height`, as in training: a residual
    generator (``meta.residual``) predicts ``thickness_min_mm + face * thickness_range_mm``
    above its base, clipped to the depth range: with ``meta.base == "fit"`` the face-model fit
    ``fit_map`` (`skull2face.statistics.skull_fit.fit_base_mm`; also the third input channel),
    otherwise the filled skull (`skull2face.geometry.fill.filled_height` of this skull map with
    ``meta.fill_radius_mm`` and ``meta.tissue_offset_mm``). Without residual mode ``face`` is
    the normalised face height. Off the predicted face mask (with a fit: off the fitted head): NaN.
    """
    import torch

    from ..dataset.reader import network_input

    k = meta.k
    spec = skull_map.spec
    with_fit = bool(meta.residual and meta.base == "fit")
    if with_fit and fit_map is None:
        raise ValueError("this generator corrects the face-model fit: give fit_map")
    arrays = {"skull": normalise(skull_map.height, spec, k)[None, None],
              "skull_mask": skull_map.mask.astype(np.float32)[None, None],
              "fit": normalise(fit_map.height, spec, k)[None, None] if with_fit else None}
    x = network_input(arrays, with_fit)
    with torch.no_grad():
        out = g(torch.from_numpy(x.astype(np.float32)))
    face = out.face[0, 0].numpy()
    mask = (out.mask_logit[0, 0].numpy() > 0) if out.mask_logit is not None else face > 1e-6
    base = None
    if with_fit:
        from ..statistics.skull_fit import fit_base_mm

        # the silhouette is the fitted head's (a whole head, whatever the training CTs cut off)
        mask = np.isfinite(fit_map.height)
        base = fit_base_mm(fit_map.height, spec.z_near)
    elif meta.residual:
        from ..geometry.fill import filled_height

        # As in training, where the skull reaches the network through its normalised map: clipped.
        skull_mm = np.where(skull_map.mask, np.clip(skull_map.height, spec.z_near, spec.z_far), np.nan)
        base = filled_height(skull_mm, spec.mm_per_px, meta.fill_radius_mm, meta.tissue_offset_mm).astype(np.float64)
    mm = codec.face_height(face.astype(np.float64), base, residual=meta.residual, z_near=spec.z_near,
                           z_far=spec.z_far, k=k, thickness_min_mm=meta.thickness_min_mm,
                           thickness_range_mm=meta.thickness_range_mm)
    height = np.where(mask, mm, np.nan).astype(np.float32)
    return DepthMap(height, np.isfinite(height), spec)


def corrects_fit(meta: Any) -> bool:
    """Whether a generator corrects the face-model fit (``base="fit"``, residual)."""
    return bool(meta.residual and meta.base == "fit")


def gains_of(model: TrainedModel, gain: float | None = None) -> tuple[dict[str, float], str]:
    """The per-region gains to apply and where they come from.

    ``gain`` (a number in [0, 1]) overrides the model file's gains in every region (for
    ablations); else the model file's fold gains; else 0 everywhere.
    """
    if gain is not None:
        return {r: float(gain) for r in corr.REGIONS}, f"--correction-gain {gain:g} (every region)"
    cal = model.calibration or {}
    if cal.get("gains"):
        heads = ", ".join(f.get("head", "?") for f in cal.get("folds", []))
        return {r: float(cal["gains"].get(r, 0.0)) for r in corr.REGIONS}, f"leave-one-head-out folds ({heads})"
    return {r: 0.0 for r in corr.REGIONS}, "none: the model file has no folds, so the correction is not applied"


def cgan_face(model: TrainedModel, skull_mesh: Any, skull_landmarks: Any, skull_map: DepthMap, *,
              prior: Any = None, gain: float | None = None, fit_spec: RenderSpec | None = None,
              table: Any = None) -> MethodResult:
    """The skull2face face of one skull (module docstring).

    Parameters
    ----------
    model : TrainedModel
    skull_mesh : trimesh.Trimesh
        Input coordinates, mm.
    skull_landmarks : mapping or LandmarkSet
        Input coordinates, mm.
    skull_map : DepthMap
        The skull's frontal map in the model's grid.
    prior : ThicknessPrior, optional
        The fit's dense thickness prior (the model file's or a dataset's).
    gain : float in [0, 1], optional
        Override of the trusted share of the correction in every region (`gains_of`).
    fit_spec : RenderSpec, optional
        The grid the face-model fit is made on (``face-model``'s, so that with no correction
        trusted this method's head IS the face-model head); default: the skull map's.
    table : sequence of Thickness, optional
        The fit's L_A thickness rows (`skull2face.statistics.skull_fit.fit_head`); None: the
        bundled table.

    Returns
    -------
    MethodResult
        With the whole head for a ``base="fit"`` generator; a map-only face for older ones.
    """
    from ..anatomy.landmark_set import points_of

    meta = model.meta
    record: dict = {"method": "skull2face"}
    if not corrects_fit(meta):
        record["base"] = meta.base or ("filled skull" if meta.residual else None)
        return MethodResult(generator_face(model.generator, meta, skull_map), record, None)
    from ..statistics.skull_fit import fit_head

    spec = skull_map.spec
    if fit_spec is None:
        fitted = fit_head(skull_mesh, skull_landmarks, spec, prior=prior, skull_map=skull_map, table=table)
        fit_map = fitted.face_map
    else:
        fitted = fit_head(skull_mesh, skull_landmarks, fit_spec, prior=prior, table=table)
        fit_map = render(fitted.head, spec)
    raw = generator_face(model.generator, meta, skull_map, fit_map)
    head_lms = {k: apply(spec.frame, v) for k, v in points_of(skull_landmarks).items()}
    labels = corr.region_labels(spec, fit_map.height, head_lms)
    gains, source = gains_of(model, gain)
    delta = corr.correction_map(raw, fit_map, labels, gains)
    head, face = fitted.head, fit_map
    if np.any(delta):
        head = corr.displace_head(fitted.head, fit_map, delta)
        face = render(head, spec)
    moved = np.abs(delta) > 0.05
    record.update({
        "base": "fit", "face_model_fit": fitted.record,
        "inferred_without_bone": fitted.record.get("inferred_without_bone", []),
        "correction": {"gains": {k: round(v, 3) for k, v in gains.items()}, "gains_from": source,
                       "mean_abs_mm": round(float(np.abs(delta[moved]).mean()), 3) if moved.any() else 0.0,
                       "max_abs_mm": round(float(np.abs(delta).max()), 3),
                       "raw_mean_abs_mm": round(float(np.nanmean(np.abs(raw.height - fit_map.height))), 3)
                       if (raw.mask & fit_map.mask).any() else 0.0},
    })
    return MethodResult(face, record, head)


def model_spec(spec: RenderSpec, res: int) -> RenderSpec:
    """``spec`` on a ``res`` x ``res`` grid over the same field (the model's grid)."""
    f = spec.size[0] / res
    return RenderSpec(size=(res, res), mm_per_px=spec.mm_per_px * f, frame=spec.frame, z_near=spec.z_near,
                      z_far=spec.z_far, centre=tuple(spec.centre), source_sha256=dict(spec.source_sha256))


def calibrate(model: TrainedModel, data_dir: str | os.PathLike) -> dict:
    """One fold's figures: the generator's full correction on the dataset's real held-out heads.

    Parameters
    ----------
    model : TrainedModel
        A ``base="fit"`` generator trained on ``data_dir``'s training split.
    data_dir : path-like
        Its dataset folder; the real paired samples of its test split (each with a fit map) are
        the held-out heads.

    Returns
    -------
    dict
        ``{"folds": [{"head", "sample", "regions": correction.region_sums(...)}], "n_heads"}``;
        no folds for a dataset without a real held-out head or a generator that does not
        correct the fit.
    """
    from ..dataset.reader import load_manifest, load_weight
    from ..io.landmarks import read_landmarks

    meta = model.meta
    man = load_manifest(data_dir)
    folds = []
    if corrects_fit(meta):
        for s in man.select(split="test", kinds="paired", real=True):
            files = s["files"]
            if not (files.get("fit") and files.get("skull_landmarks")):
                continue

            def at_res(rel: str) -> DepthMap:
                dm = load_depthmap(man.root / rel)
                h = block_mean_mm(dm.height, meta.resolution)
                return DepthMap(h, np.isfinite(h), model_spec(dm.spec, meta.resolution))

            skull, face, fit = at_res(files["skull"]), at_res(files["face"]), at_res(files["fit"])
            weight = None  # the gate's weight map (finite, in [0, 1]) at the model's grid
            if files.get("weight"):
                weight = block_mean_mm(load_weight(man, files["weight"]), meta.resolution)
            raw = generator_face(model.generator, meta, skull, fit)
            lms = read_landmarks(man.root / files["skull_landmarks"]).points  # head frame
            labels = corr.region_labels(fit.spec, fit.height, lms)
            full = corr.correction_map(raw, fit, labels, {r: 1.0 for r in corr.REGIONS})
            residual = face.height.astype(np.float64) - fit.height.astype(np.float64)
            folds.append({"head": s["source_head"], "sample": s["id"],
                          "regions": corr.region_sums(full, residual, labels, weight)})
    return {"folds": folds, "n_heads": len({f["head"] for f in folds})}


__all__ = ["TrainedModel", "calibrate", "cgan_face", "corrects_fit", "gains_of", "generator_face", "model_spec"]
