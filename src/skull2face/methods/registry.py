"""Every way to turn a skull into a face, by name: the one list of methods.

=================  ==========================================================================
``skull2face``     the trained cGAN generator; the caller (`skull2face.stages.predict`) loads
                   the model file and hands in ``generator``, a callable skull map -> face map
``tissue-depth``   `skull2face.methods.tissue_depth`: published tissue thickness over the skull
``mean-face``      `skull2face.methods.mean_face`: the mean training face
``nearest-skull``  `skull2face.methods.nearest_skull`: the face of the nearest training skull
``envelope``       `skull2face.methods.envelope`: the skull grown by a constant 6 mm (the
                   trivial answer every method must beat)
``face-model``     `skull2face.methods.face_model`: the ICT-FaceKit head model fitted to the
                   skull's L_A landmark targets and its 6 mm envelope
=================  ==========================================================================

`names` lists them in display order (predict's ``--method`` choices, the demo's runs, the
report's rows); `METHODS` holds each one's `Method` (one-line summary, what it needs, how to
run it) and `predict_face_map` runs any of them by name with one set of keyword arguments.
Every method returns a `DepthMap` on the SAME pixel grid and with the SAME render spec as the
skull map it is asked about, so its output goes through the same `depth_to_mesh` and the same
evaluation as any other.

This module is light to import (standard library only; each method's module is imported when
it runs), so a command line can list the methods without loading numpy, trimesh or torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: keep the import light
    import trimesh

    from ..geometry.depthmap import DepthMap, RenderSpec


@dataclass(frozen=True)
class Method:
    """One way to predict a face, in `METHODS`.

    Parameters
    ----------
    name : str
        The name users type (``--method``).
    summary : str
        One line for help texts and reports.
    needs : tuple of str
        Keyword arguments of `predict_face_map` it cannot do without.
    run : callable
        ``run(inputs: dict, info: dict) -> DepthMap``.
    needs_model : bool
        Runs a trained generator: the caller must load a model file.
    needs_references : bool
        Uses reference maps of training heads (a dataset folder, or those stored in a model
        bundle).
    uses_prior : bool
        Uses the measured thickness prior when there is one (a dataset's ``prior.npz``, or the
        one stored in a model bundle), and works without it.
    """

    name: str
    summary: str
    needs: tuple[str, ...]
    run: Callable[[dict, dict], DepthMap] = field(repr=False)
    needs_model: bool = False
    needs_references: bool = False
    uses_prior: bool = False


def _target_spec(inputs: dict) -> RenderSpec:
    if inputs.get("spec") is not None:
        return inputs["spec"]
    if inputs.get("skull_map") is not None:
        return inputs["skull_map"].spec
    raise ValueError("give the target's render spec (spec=...) or its skull map (skull_map=...)")


def _run_generator(inputs: dict, info: dict) -> DepthMap:
    return inputs["generator"](inputs["skull_map"])


def _run_tissue(inputs: dict, info: dict) -> DepthMap:
    from .tissue_depth import tissue_depth_face

    return tissue_depth_face(inputs["skull_mesh"], inputs["skull_landmarks"], _target_spec(inputs),
                             info=info, **inputs.get("options", {}))


def _run_mean(inputs: dict, info: dict) -> DepthMap:
    from .mean_face import mean_face, mean_face_for

    mean_map = inputs.get("mean_map")
    if mean_map is None:
        faces = inputs.get("train_faces")
        if faces is None and inputs.get("train_pairs") is not None:
            faces = [f for _s, f in inputs["train_pairs"]]
        if not faces:
            raise ValueError("method 'mean-face' needs mean_map, train_faces or train_pairs")
        mean_map = mean_face(faces, **inputs.get("options", {}))
        info["n_train"] = len(faces)
    return mean_face_for(_target_spec(inputs), mean_map, info)


def _run_envelope(inputs: dict, info: dict) -> DepthMap:
    from .envelope import envelope_face

    return envelope_face(inputs["skull_mesh"], _target_spec(inputs), info=info, **inputs.get("options", {}))


def _run_face_model(inputs: dict, info: dict) -> DepthMap:
    from .face_model import face_model_face

    return face_model_face(inputs["skull_mesh"], inputs["skull_landmarks"], _target_spec(inputs), info=info,
                           prior=inputs.get("prior"), skull_map=inputs.get("skull_map"),
                           **inputs.get("options", {}))


def _run_nearest(inputs: dict, info: dict) -> DepthMap:
    from .nearest_skull import nearest_skull_face

    return nearest_skull_face(inputs["skull_map"], inputs["train_pairs"], info=info, **inputs.get("options", {}))


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("skull2face", "the trained cGAN generator (a model file; default: the bundled model)",
           ("skull_map", "generator"), _run_generator, needs_model=True),
    Method("tissue-depth", "published mean soft-tissue thickness over the skull, orbits and aperture "
                           "bridged, schematic nose", ("skull_mesh", "skull_landmarks"), _run_tissue),
    Method("mean-face", "mean training face in the head frame", (), _run_mean, needs_references=True),
    Method("nearest-skull", "face of the training head whose skull map is nearest",
           ("skull_map", "train_pairs"), _run_nearest, needs_references=True),
    Method("envelope", "the skull grown by a constant 6 mm (union of balls, outer surface): the trivial answer",
           ("skull_mesh",), _run_envelope),
    Method("face-model", "the ICT-FaceKit head model fitted to the skull's landmark targets and the thickness "
                         "prior measured on real heads (or the skull + 6 mm as a lower bound)",
           ("skull_mesh", "skull_landmarks"), _run_face_model, uses_prior=True),
)}
"""Every method by name, in display order."""


def names() -> tuple[str, ...]:
    """Every method's name, in display order: ``('skull2face', 'tissue-depth', 'mean-face', 'nearest-skull',
    'envelope', 'face-model')``."""
    return tuple(METHODS)


def baseline_names() -> tuple[str, ...]:
    """The classic baselines (every method that needs no trained model), in display order."""
    return tuple(n for n, m in METHODS.items() if not m.needs_model)


def describe() -> str:
    """One line per method, ``name: summary``, for help texts."""
    return "\n".join(f"{m.name}: {m.summary}" for m in METHODS.values())


def predict_face_map(method: str, *, spec: RenderSpec | None = None, skull_map: DepthMap | None = None,
                     skull_mesh: trimesh.Trimesh | None = None, skull_landmarks: Any = None,
                     train_pairs: Sequence[tuple[DepthMap, DepthMap]] | None = None,
                     train_faces: Sequence[DepthMap] | None = None, mean_map: DepthMap | None = None,
                     generator: Callable[[DepthMap], DepthMap] | None = None, prior: Any = None,
                     info: dict | None = None, **options: Any) -> DepthMap:
    """Run a method by name; every method returns a face map in the target's render spec.

    Parameters
    ----------
    method : str
        One of `names`.
    spec : RenderSpec, optional
        The target's render spec; defaults to ``skull_map.spec``.
    skull_map : DepthMap, optional
        The target skull map (needed by 'skull2face' and 'nearest-skull').
    skull_mesh : trimesh.Trimesh, optional
        Target skull, input coordinates (needed by 'tissue-depth').
    skull_landmarks : mapping or LandmarkSet, optional
        Target skull landmarks, input coordinates (needed by 'tissue-depth').
    train_pairs : sequence of (DepthMap, DepthMap), optional
        Training (skull, face) maps ('nearest-skull'; 'mean-face' uses their faces).
    train_faces : sequence of DepthMap, optional
        Training faces ('mean-face').
    mean_map : DepthMap, optional
        A precomputed `skull2face.methods.mean_face.mean_face` ('mean-face').
    generator : callable, optional
        ``generator(skull_map) -> DepthMap`` in the skull map's spec: the trained model
        ('skull2face'; `skull2face.stages.predict` builds it from a model file).
    prior : skull2face.statistics.thickness_prior.ThicknessPrior, optional
        The measured thickness prior ('face-model'; without it the fit's dense term is the
        filled skull + 6 mm as a lower bound).
    info : dict, optional
        Filled in place with the method's JSON-ready record (what it chose or used).
    **options
        Passed to the method's function (e.g. ``nose=False`` for 'tissue-depth').

    Returns
    -------
    DepthMap
        Its extra attribute ``info`` is the record.

    Raises
    ------
    ValueError
        Unknown method, or a required input missing (the message names it).
    """
    from .references import with_info

    if method not in METHODS:
        raise ValueError(f"unknown baseline {method!r}; choose one of {', '.join(METHODS)}")
    m = METHODS[method]
    inputs = {"spec": spec, "skull_map": skull_map, "skull_mesh": skull_mesh, "skull_landmarks": skull_landmarks,
              "train_pairs": train_pairs, "train_faces": train_faces, "mean_map": mean_map,
              "generator": generator, "prior": prior, "options": options}
    missing = [k for k in m.needs if inputs.get(k) is None]
    if missing:
        raise ValueError(f"method {method!r} needs {', '.join(missing)}")
    record = {} if info is None else info
    dm = m.run(inputs, record)
    record.setdefault("method", method)
    return with_info(dm, record)


__all__ = ["METHODS", "Method", "baseline_names", "describe", "names", "predict_face_map"]
