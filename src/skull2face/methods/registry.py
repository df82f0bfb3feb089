"""Every way to turn a skull into a face, by name: the one list of methods.

=================  ==========================================================================
``skull2face``     `skull2face.methods.cgan`: the trained cGAN's correction of the fitted
                   whole head, trusted per face region as far as held-out folds allow; the
                   caller (`skull2face.stages.predict`) loads the model file and hands in
                   ``model`` (a `skull2face.methods.cgan.TrainedModel`)
``tissue-depth``   `skull2face.methods.tissue_depth`: published tissue thickness over the skull
``mean-face``      `skull2face.methods.mean_face`: the mean training face
``nearest-skull``  `skull2face.methods.nearest_skull`: the face of the nearest training skull
``envelope``       `skull2face.methods.envelope`: the skull grown by a constant 6 mm (the
                   trivial answer every method must beat)
``face-model``     `skull2face.methods.face_model`: the ICT-FaceKit head model fitted to the
                   skull's L_A landmark targets and the measured thickness prior
=================  ==========================================================================

`names` lists them in display order (predict's ``--method`` choices, the demo's runs, the
report's rows); `METHODS` holds each one's `Method` (one-line summary, what it needs, how to
run it) and `run_method` runs any of them by name with one set of keyword arguments. Every
method returns a `skull2face.methods.result.MethodResult`: its face map on the SAME pixel grid
and render spec as the skull map it is asked about (so every method's map goes through the same
evaluation), its JSON-ready record, and the whole head where it has one.

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
    from .cgan import TrainedModel
    from .result import MethodResult


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
        Keyword arguments of `run_method` it cannot do without.
    run : callable
        ``run(inputs: dict) -> MethodResult``.
    needs_model : bool
        Runs a trained generator: the caller must load a model file.
    needs_references : bool
        Uses reference maps of training heads (a dataset folder, or those stored in a model
        bundle).
    uses_prior : bool
        Uses the measured thickness prior when there is one (a dataset's ``prior.npz``, or the
        one stored in a model bundle), and works without it.
    uses_table : bool
        Places the skin with a soft-tissue thickness table (`run_method`'s ``table``).
    """

    name: str
    summary: str
    needs: tuple[str, ...]
    run: Callable[[dict], MethodResult] = field(repr=False)
    needs_model: bool = False
    needs_references: bool = False
    uses_prior: bool = False
    uses_table: bool = False


def _target_spec(inputs: dict) -> RenderSpec:
    if inputs.get("spec") is not None:
        return inputs["spec"]
    if inputs.get("skull_map") is not None:
        return inputs["skull_map"].spec
    raise ValueError("give the target's render spec (spec=...) or its skull map (skull_map=...)")


def _map_only(face_map: DepthMap, record: dict) -> MethodResult:
    from .result import MethodResult

    return MethodResult(face_map, record, None)


def _run_cgan(inputs: dict) -> MethodResult:
    from .cgan import cgan_face

    return cgan_face(inputs["model"], inputs["skull_mesh"], inputs["skull_landmarks"], inputs["skull_map"],
                     prior=inputs.get("prior"), table=inputs.get("table"), **inputs.get("options", {}))


def _run_tissue(inputs: dict) -> MethodResult:
    from .tissue_depth import tissue_depth_face

    record: dict = {}
    face = tissue_depth_face(inputs["skull_mesh"], inputs["skull_landmarks"], _target_spec(inputs),
                             table=inputs.get("table"), info=record, **inputs.get("options", {}))
    return _map_only(face, record)


def _run_mean(inputs: dict) -> MethodResult:
    from .mean_face import mean_face, mean_face_for

    record: dict = {}
    mean_map = inputs.get("mean_map")
    if mean_map is None:
        faces = inputs.get("train_faces")
        if faces is None and inputs.get("train_pairs") is not None:
            faces = [f for _s, f in inputs["train_pairs"]]
        if not faces:
            raise ValueError("method 'mean-face' needs mean_map, train_faces or train_pairs")
        mean_map = mean_face(faces, **inputs.get("options", {}))
        record["n_train"] = len(faces)
    return _map_only(mean_face_for(_target_spec(inputs), mean_map, record), record)


def _run_envelope(inputs: dict) -> MethodResult:
    from .envelope import envelope_face

    record: dict = {}
    face = envelope_face(inputs["skull_mesh"], _target_spec(inputs), info=record, **inputs.get("options", {}))
    return _map_only(face, record)


def _run_face_model(inputs: dict) -> MethodResult:
    from .face_model import face_model_face

    return face_model_face(inputs["skull_mesh"], inputs["skull_landmarks"], _target_spec(inputs),
                           prior=inputs.get("prior"), skull_map=inputs.get("skull_map"),
                           table=inputs.get("table"), **inputs.get("options", {}))


def _run_nearest(inputs: dict) -> MethodResult:
    from .nearest_skull import nearest_skull_face

    record: dict = {}
    face = nearest_skull_face(inputs["skull_map"], inputs["train_pairs"], info=record, **inputs.get("options", {}))
    return _map_only(face, record)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("skull2face", "the trained cGAN's correction of the fitted whole head, trusted per face region as far "
                         "as leave-one-head-out folds allow (a model file; default: the bundled model)",
           ("skull_map", "skull_mesh", "skull_landmarks", "model"), _run_cgan, needs_model=True, uses_prior=True,
           uses_table=True),
    Method("tissue-depth", "published mean soft-tissue thickness over the skull, orbits and aperture "
                           "bridged, schematic nose", ("skull_mesh", "skull_landmarks"), _run_tissue, uses_table=True),
    Method("mean-face", "mean training face in the head frame", (), _run_mean, needs_references=True),
    Method("nearest-skull", "face of the training head whose skull map is nearest",
           ("skull_map", "train_pairs"), _run_nearest, needs_references=True),
    Method("envelope", "the skull grown by a constant 6 mm (union of balls, outer surface): the trivial answer",
           ("skull_mesh",), _run_envelope),
    Method("face-model", "the ICT-FaceKit head model fitted to the skull's landmark targets and the thickness "
                         "prior measured on real heads (or the skull + 6 mm as a lower bound)",
           ("skull_mesh", "skull_landmarks"), _run_face_model, uses_prior=True, uses_table=True),
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


def run_method(method: str, *, spec: RenderSpec | None = None, skull_map: DepthMap | None = None,
               skull_mesh: trimesh.Trimesh | None = None, skull_landmarks: Any = None,
               train_pairs: Sequence[tuple[DepthMap, DepthMap]] | None = None,
               train_faces: Sequence[DepthMap] | None = None, mean_map: DepthMap | None = None,
               model: TrainedModel | None = None, prior: Any = None, table: Any = None,
               **options: Any) -> MethodResult:
    """Run a method by name.

    Parameters
    ----------
    method : str
        One of `names`.
    spec : RenderSpec, optional
        The target's render spec; defaults to ``skull_map.spec``.
    skull_map : DepthMap, optional
        The target skull map (needed by 'skull2face' and 'nearest-skull').
    skull_mesh : trimesh.Trimesh, optional
        Target skull, input coordinates, mm.
    skull_landmarks : mapping or LandmarkSet, optional
        Target skull landmarks, input coordinates, mm.
    train_pairs : sequence of (DepthMap, DepthMap), optional
        Training (skull, face) maps ('nearest-skull'; 'mean-face' uses their faces).
    train_faces : sequence of DepthMap, optional
        Training faces ('mean-face').
    mean_map : DepthMap, optional
        A precomputed `skull2face.methods.mean_face.mean_face` ('mean-face').
    model : skull2face.methods.cgan.TrainedModel, optional
        A loaded model file ('skull2face'; `skull2face.stages.predict` loads it).
    prior : skull2face.statistics.thickness_prior.ThicknessPrior, optional
        The measured thickness prior ('face-model', 'skull2face'; without it the fit's dense
        term is the filled skull + 6 mm as a lower bound).
    table : sequence of Thickness, optional
        The soft-tissue thickness rows ('face-model', 'skull2face', 'tissue-depth'; a
        `skull2face.anatomy.tissue.TissueTable`'s ``rows``); None: the bundled Hona & Stephan
        2024 table.
    **options
        Passed to the method's function (e.g. ``nose=False`` for 'tissue-depth', ``gain=0.5``
        for 'skull2face').

    Returns
    -------
    MethodResult
        The face map in the target's spec, the method's JSON-ready record (with ``method``)
        and the whole head where the method has one.

    Raises
    ------
    ValueError
        Unknown method, or a required input missing (the message names it).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    m = METHODS[method]
    inputs = {"spec": spec, "skull_map": skull_map, "skull_mesh": skull_mesh, "skull_landmarks": skull_landmarks,
              "train_pairs": train_pairs, "train_faces": train_faces, "mean_map": mean_map,
              "model": model, "prior": prior, "table": table, "options": options}
    missing = [k for k in m.needs if inputs.get(k) is None]
    if missing:
        raise ValueError(f"method {method!r} needs {', '.join(missing)}")
    result = m.run(inputs)
    result.record.setdefault("method", method)
    return result


__all__ = ["METHODS", "Method", "baseline_names", "describe", "names", "run_method"]
