"""Files of a training run: checkpoints, metrics lines, and the exported generator.

``last.pt`` and ``best.pt`` hold everything needed to resume exactly (models, optimisers, RNG
states, counters) and are written atomically, as is every rewrite of ``metrics.jsonl``; an
appended metrics line is flushed to disk. A checkpoint also records the run's *trajectory*:
every setting that decides the weights, which a resumed run must share.

`export_generator` writes a small file with the generator alone; `load_generator` rebuilds a
generator from such a file, a checkpoint or a run folder, with its `ModelMeta`.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..io.atomic import atomic_path
from ..model import UNetGenerator
from .meta import RESIDUAL_KEYS, ModelMeta
from .settings import LEGACY_SETTINGS, TrainSettings

CHECKPOINT_FORMAT = "skull2face-checkpoint"
EXPORT_FORMAT = "skull2face-generator"
FORMAT_VERSION = 1
# Settings that do not change the training trajectory, so a resumed run may differ in them.
FREE_ON_RESUME = ("device", "num_threads", "progress", "stop_after_epochs", "val_every")
# Settings that only matter in residual mode.
RESIDUAL_ONLY = (*RESIDUAL_KEYS, "init_thickness_mm")


# --------------------------------------------------------------------------------------------
# What a resumed run must share
# --------------------------------------------------------------------------------------------


def trajectory(settings: TrainSettings) -> dict[str, Any]:
    """The settings that decide the weights (everything but `FREE_ON_RESUME`), schedule resolved."""
    d = settings.to_json()
    for name in FREE_ON_RESUME:
        d.pop(name)
    d["schedule"] = [list(s) for s in settings.stages()]
    return d


def trajectory_diff(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Keys where a checkpoint's trajectory differs from the current one.

    Settings unknown to an older checkpoint count as their `LEGACY_SETTINGS` value when they have one.
    Residual-only settings are ignored when neither run is residual.
    """
    theirs = {**LEGACY_SETTINGS, **theirs}
    keys = set(mine) | set(theirs)
    if not mine.get("residual") and not theirs.get("residual"):
        keys -= set(RESIDUAL_ONLY)
    return [key for key in sorted(keys) if mine.get(key) != theirs.get(key)]


# --------------------------------------------------------------------------------------------
# Random number generators
# --------------------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """The Python, numpy, torch and CUDA RNG states, readable by ``torch.load(weights_only=True)``."""
    # numpy's state array becomes a list so that torch.load(weights_only=True) can read it back.
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states `rng_state` returned."""
    random.setstate(_tuplify(state["python"]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(obj: Any) -> Any:
    return tuple(_tuplify(o) for o in obj) if isinstance(obj, (list, tuple)) else obj


# --------------------------------------------------------------------------------------------
# Checkpoint files
# --------------------------------------------------------------------------------------------


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: a kill leaves the old file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A training checkpoint or exported generator, read with ``weights_only=True``.

    Raises
    ------
    InputError
        Naming the file when it cannot be read or is neither.
    """
    try:
        empty = Path(path).stat().st_size == 0
        ck = None if empty else torch.load(path, map_location=device, weights_only=True)
    except Exception:  # torch raises many types (and unsafe advice) for a truncated or foreign file
        raise InputError(path, "not a skull2face model file: PyTorch cannot read it (truncated, corrupt or "
                               "another format)") from None
    if empty:
        raise InputError(path, "not a skull2face model file: the file is empty")
    if not isinstance(ck, dict) or ck.get("format") not in (CHECKPOINT_FORMAT, EXPORT_FORMAT):
        raise InputError(path, "not a skull2face model file (a training checkpoint, exported generator or "
                               "bundle)")
    return ck


def run_checkpoint(run: Path) -> Path:
    """``best.pt`` of a run folder, else its ``last.pt``."""
    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            return run / name
    raise InputError(run, "no best.pt or last.pt in this run folder")


# --------------------------------------------------------------------------------------------
# Metrics lines
# --------------------------------------------------------------------------------------------


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The lines of ``metrics.jsonl`` up to the first one cut by a kill ([] without the file)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill; everything after it is void as well
    return out


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Append one line to ``metrics.jsonl`` and flush it to disk."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def jsonable_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` through a JSON round trip (what a checkpoint stores of it)."""
    return json.loads(json.dumps(row))


# --------------------------------------------------------------------------------------------
# Export and loading for prediction
# --------------------------------------------------------------------------------------------


def _validation(metrics: dict[str, Any]) -> dict[str, Any]:
    return {key: v for key, v in metrics.items() if key.startswith(("val_", "baseline_"))}


def export_generator(run_dir: str | os.PathLike, path: str | os.PathLike, which: str = "best") -> Path:
    """Write a small file with only the generator's weights and what is needed to use it.

    Parameters
    ----------
    run_dir : path-like
        A training run folder.
    path : path-like
        Output file (written atomically), e.g. ``skull2face-generator.pt``.
    which : {"best", "last"}
        Checkpoint to export; "best" falls back to ``last.pt`` when there is no ``best.pt``.

    Returns
    -------
    pathlib.Path
        ``path``. The file holds ``format``, ``generator_kwargs``, ``state_dict`` (float32) and
        ``meta``: the `ModelMeta` keys but ``generator_kwargs`` (k, z_near, z_far, resolution,
        mm_per_px at that resolution, centre, the dataset's size and pitch, ``residual`` with
        ``thickness_range_mm``, ``thickness_min_mm``, ``fill_radius_mm`` and
        ``tissue_offset_mm``, the epoch, its validation metrics and the training settings).
        With the default widths it is about 11 MB.

    Raises
    ------
    InputError
        Naming the checkpoint when it is not a training checkpoint or its meta would not load.
    """
    run = Path(run_dir)
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    src = run / "last.pt" if which == "last" else run_checkpoint(run)
    ck = load_checkpoint(src)
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise InputError(src, "not a training checkpoint")
    meta = {**ck["data_meta"], "epoch": ck["epoch"], "checkpoint": src.name,
            "validation": _validation(ck["metrics"]), "settings": ck["settings"], "torch": str(torch.__version__)}
    ModelMeta.from_dict(src, {**meta, "generator_kwargs": ck["generator_kwargs"]})  # refuse what would not load
    payload = {"format": EXPORT_FORMAT, "version": FORMAT_VERSION, "generator_kwargs": ck["generator_kwargs"],
               "state_dict": {key: v.detach().cpu().contiguous() for key, v in ck["G"].items()}, "meta": meta}
    save_atomic(payload, Path(path))
    return Path(path)


def load_generator(path_or_run: str | os.PathLike,
                   device: str | torch.device = "cpu") -> tuple[UNetGenerator, ModelMeta]:
    """Rebuild a trained generator for prediction.

    Parameters
    ----------
    path_or_run : path-like
        An `export_generator` file, a ``.pt`` training checkpoint, or a run folder (its
        ``best.pt``, else ``last.pt``).
    device : str or torch.device

    Returns
    -------
    G : UNetGenerator
        In eval mode on ``device``. Feed it ``concat(normalise(skull, k), skull mask)`` of
        shape (B, 2, R, R) at ``R = meta.resolution`` (any power of two from
        ``generator_kwargs["min_res"]`` works, at lower quality); ``mask_logit > 0`` marks the
        face; `skull2face.geometry.codec.face_height` reads ``face`` in mm (see
        `skull2face.methods.cgan.generator_face`).
    meta : ModelMeta
        For a training checkpoint ``checkpoint`` is its file name and ``torch`` is None.

    Raises
    ------
    InputError
        Naming the file when it is missing, not a skull2face checkpoint / generator, or its
        meta lacks a key or has an unknown one (`ModelMeta.from_dict`).
    """
    p = Path(path_or_run)
    if p.is_dir():
        p = run_checkpoint(p)
    if not p.is_file():
        raise InputError(p, "generator file not found")
    g, meta = generator_from(load_checkpoint(p), p)
    return g.to(device).eval(), meta


def generator_from(ck: dict[str, Any], p: Path) -> tuple[UNetGenerator, ModelMeta]:
    """The generator and meta of an already loaded checkpoint or export (``ck``, read from
    file ``p``, which errors name); see `load_generator`. The generator is on the CPU, in eval
    mode."""
    if ck["format"] == EXPORT_FORMAT:
        state, meta = ck["state_dict"], dict(ck["meta"])
    else:
        state = ck["G"]
        meta = {**ck["data_meta"], "epoch": ck["epoch"], "checkpoint": p.name, "settings": ck["settings"],
                "validation": _validation(ck.get("metrics", {})), "torch": None}
    kwargs = dict(ck["generator_kwargs"])
    meta = ModelMeta.from_dict(p, {**meta, "generator_kwargs": kwargs})
    g = UNetGenerator(**kwargs)
    try:
        g.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(p, f"generator weights do not fit its recorded architecture: {exc}") from None
    return g.eval(), meta


__all__ = [
    "CHECKPOINT_FORMAT",
    "EXPORT_FORMAT",
    "FORMAT_VERSION",
    "FREE_ON_RESUME",
    "RESIDUAL_ONLY",
    "append_metrics",
    "export_generator",
    "generator_from",
    "jsonable_row",
    "load_checkpoint",
    "load_generator",
    "read_metrics",
    "rng_state",
    "run_checkpoint",
    "save_atomic",
    "set_rng_state",
    "trajectory",
    "trajectory_diff",
    "write_metrics",
]
