"""What a trained generator needs besides its weights: `ModelMeta`, typed and checked.

A training checkpoint records `data_meta` (depth range, grid, output coding); an exported
generator file (`skull2face.training.checkpoints.export_generator`) adds the epoch, the
checkpoint's name, its validation metrics, the training settings and the torch version.
`ModelMeta.from_dict` reads either back and refuses a meta with a missing or an unknown key,
naming the file, instead of filling in defaults: a model read with wrong assumptions would
predict a wrong face without a word.

Two older layouts are read on purpose: files written before residual mode existed have no
``residual`` key (nor the residual-only keys); their generator predicts the normalised face
height, so they load with ``residual`` False and the residual-only values None. Files written
before the face-model base existed have no ``base`` key: their base is the filled skull
(``"fill"``).
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .settings import LEGACY_SETTINGS, TrainSettings  # LEGACY_SETTINGS: still importable from here

# Keys that only matter in residual mode (None for a model written before it existed).
RESIDUAL_KEYS = ("thickness_range_mm", "thickness_min_mm", "fill_radius_mm", "tissue_offset_mm")


@dataclass(frozen=True, eq=False)
class ModelMeta(Mapping):
    """How to feed a trained generator and read its output back in mm.

    Also a read-only mapping (``meta["k"]``), for code written against the plain dict it replaces.

    Attributes
    ----------
    k : float
        Depth exponent of the normalised maps.
    z_near, z_far : float, mm
        Depth range of the normalised maps.
    resolution : int
        Side (pixels) of the generator's input and output maps.
    mm_per_px : float, mm
        Pixel pitch at ``resolution``.
    centre : (float, float), mm
        Head-frame (x, y) of the image centre; with ``mm_per_px`` and ``resolution`` the
        `skull2face.geometry.depthmap.RenderSpec` of the maps.
    dataset_size : (int, int)
        The training dataset's map size (H, W).
    dataset_mm_per_px : float, mm
        The training dataset's pixel pitch.
    input, output : str
        The input and output in words.
    residual : bool
        The ``face`` output is the soft-tissue thickness ``thickness_min_mm + face *
        thickness_range_mm`` above ``filled_height(skull mm, mm_per_px, fill_radius_mm,
        tissue_offset_mm)`` (`skull2face.geometry.codec.face_height`); otherwise the normalised
        face height.
    thickness_range_mm, thickness_min_mm, fill_radius_mm, tissue_offset_mm : float or None, mm
        Residual mode's values (None only for models written before residual mode).
    base : {'fit', 'fill'} or None
        Residual mode's base surface: ``fit``, the face-model fit over the skull
        (`skull2face.statistics.skull_fit.fitted_face` with the thickness prior stored in the
        model file), which is also the generator's third input channel; ``fill``, the filled
        skull above. None without residual mode.
    epoch : int
        Epochs trained.
    checkpoint : str
        Name of the checkpoint the weights come from (``best.pt`` or ``last.pt``).
    validation : dict
        The checkpoint's ``val_*`` and ``baseline_*`` metrics.
    settings : dict
        The training settings (`skull2face.training.settings.TrainSettings.to_json`).
    torch : str or None
        torch version of the export (None when read from a training checkpoint).
    generator_kwargs : dict
        Keyword arguments of `skull2face.model.UNetGenerator`.
    """

    k: float
    z_near: float
    z_far: float
    resolution: int
    mm_per_px: float
    centre: tuple[float, float]
    dataset_size: tuple[int, int]
    dataset_mm_per_px: float
    input: str
    output: str
    residual: bool
    thickness_range_mm: float | None
    thickness_min_mm: float | None
    fill_radius_mm: float | None
    tissue_offset_mm: float | None
    base: str | None
    epoch: int
    checkpoint: str
    validation: dict
    settings: dict
    torch: str | None
    generator_kwargs: dict

    @classmethod
    def from_dict(cls, path: str | os.PathLike | None, data: Any) -> ModelMeta:
        """Check and convert a meta dict read from the model file ``path``.

        Parameters
        ----------
        path : path-like or None
            The file the meta comes from (named in errors).
        data : mapping
            Every key of `ModelMeta`, no other (``residual`` and `RESIDUAL_KEYS` may be missing
            together in a file written before residual mode).

        Raises
        ------
        InputError
            Naming ``path``: a missing or unknown key, or a value of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise InputError(path, "the model's meta is not a mapping: not a skull2face model file")
        data = dict(data)
        if "residual" not in data:
            # Written before residual mode: the face output is the normalised height.
            data = {**dict.fromkeys(RESIDUAL_KEYS), **data, "residual": False}
        if "base" not in data:
            # Written before the face-model base: residual models corrected the filled skull.
            data = {**data, "base": "fill" if data.get("residual") else None}
        names = _KEYS
        missing = [key for key in names if key not in data]
        unknown = sorted(str(key) for key in data if key not in names)
        if missing or unknown:
            problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
                [f"unknown {', '.join(unknown)}"] if unknown else [])
            raise InputError(path, f"model meta keys: {'; '.join(problems)} (not a model file this version of "
                                   "skull2face wrote: export or train it again)")
        out = {}
        for key in names:
            try:
                out[key] = _CONVERT[key](data[key], data["residual"])
            except (TypeError, ValueError):
                raise InputError(path, f"model meta {key} = {data[key]!r} is not {_WHAT[key]}") from None
        return cls(**out)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every key (tuples as lists), as the model file stores it."""
        return {key: list(v) if isinstance(v, tuple) else v for key, v in zip(_KEYS, self.values())}

    # Read-only mapping interface.
    def __getitem__(self, key: str) -> Any:
        if key not in _KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return len(_KEYS)


_KEYS = tuple(f.name for f in dataclasses.fields(ModelMeta))


# Converters of the values, by key: (value, residual) -> value, TypeError / ValueError if wrong.
def _number(kind):
    def convert(v, residual):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral if kind is int else numbers.Real):
            raise TypeError(v)
        return kind(v)

    return convert


def _pair(kind):
    def convert(v, residual):
        if isinstance(v, (str, bytes, Mapping)) or len(v) != 2:
            raise ValueError(v)
        return tuple(_number(kind)(x, residual) for x in v)

    return convert


def _residual_number(v, residual):
    if v is None and residual is False:
        return None
    return _number(float)(v, residual)


def _typed(kind, optional=False):
    def convert(v, residual):
        if not (isinstance(v, kind) or optional and v is None):
            raise TypeError(v)
        return v

    return convert


_CONVERT = {
    "k": _number(float), "z_near": _number(float), "z_far": _number(float), "resolution": _number(int),
    "mm_per_px": _number(float), "centre": _pair(float), "dataset_size": _pair(int),
    "dataset_mm_per_px": _number(float), "input": _typed(str), "output": _typed(str), "residual": _typed(bool),
    **dict.fromkeys(RESIDUAL_KEYS, _residual_number), "epoch": _number(int), "checkpoint": _typed(str),
    "validation": _typed(dict), "settings": _typed(dict), "torch": _typed(str, optional=True),
    "generator_kwargs": _typed(dict),
    "base": lambda v, residual: _base(v, residual),
}
def _base(v, residual):
    if v is None and residual is False:
        return None
    if v not in ("fit", "fill"):
        raise ValueError(v)
    return v


_WHAT = {
    "base": "'fit' or 'fill' (residual mode)",
    **dict.fromkeys(("k", "z_near", "z_far", "mm_per_px", "dataset_mm_per_px"), "a number"),
    **dict.fromkeys(("resolution", "epoch"), "an integer"), "centre": "a pair of numbers",
    "dataset_size": "a pair of integers", **dict.fromkeys(("input", "output", "checkpoint"), "a string"),
    "residual": "true or false", **dict.fromkeys(RESIDUAL_KEYS, "a number (residual mode)"),
    **dict.fromkeys(("validation", "settings", "generator_kwargs"), "a mapping"), "torch": "a string or null",
}


def data_meta(data: Any, settings: TrainSettings) -> dict[str, Any]:
    """The meta keys a checkpoint records: what prediction needs to feed the generator and read it.

    Parameters
    ----------
    data : skull2face.training.data.Data
    settings : TrainSettings

    Returns
    -------
    dict
        ``k``, ``z_near``, ``z_far``, ``resolution``, ``mm_per_px``, ``centre``,
        ``dataset_size``, ``dataset_mm_per_px``, ``input``, ``residual`` with `RESIDUAL_KEYS`,
        and ``output``: the `ModelMeta` keys that do not depend on the epoch or the export.
    """
    size = data.manifest.size[0]
    return {
        "k": settings.k, "z_near": data.manifest.z_near, "z_far": data.manifest.z_far,
        "resolution": settings.final_res,
        "mm_per_px": data.manifest.mm_per_px * size / settings.final_res,
        "centre": data.info["centre"],
        "dataset_size": list(data.manifest.size), "dataset_mm_per_px": data.manifest.mm_per_px,
        "input": ("concat(normalise(skull height, k), skull mask, normalise(fitted face height, k)) as "
                  "(B, 3, R, R), R = resolution" if settings.residual and settings.base == "fit" else
                  "concat(normalise(skull height, k), skull mask) as (B, 2, R, R), R = resolution"),
        "base": settings.base if settings.residual else None,
        "residual": settings.residual,
        "thickness_range_mm": settings.thickness_range_mm,
        "thickness_min_mm": settings.thickness_min_mm,
        "fill_radius_mm": settings.fill_radius_mm,
        "tissue_offset_mm": settings.tissue_offset_mm,
        "output": ("face: correction of the base surface B = the face-model fit "
                   "(skull2face.statistics.skull_fit.fitted_face, with the model file's thickness prior); "
                   "face height = clip(B + thickness_min_mm + face * thickness_range_mm, z_near, z_far); "
                   "face mask: mask_logit > 0" if settings.residual and settings.base == "fit" else
                   "face: soft-tissue thickness above the base surface B = skull2face.geometry.fill."
                   "filled_height(skull mm, mm_per_px, fill_radius_mm, tissue_offset_mm); face height = "
                   "clip(B + thickness_min_mm + face * thickness_range_mm, z_near, z_far); "
                   "face mask: mask_logit > 0" if settings.residual else
                   "face: normalised height (denormalise with z_near, z_far, k); face mask: mask_logit > 0"),
    }


__all__ = ["LEGACY_SETTINGS", "RESIDUAL_KEYS", "ModelMeta", "data_meta"]
