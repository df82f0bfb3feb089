"""Stage ``predict``: a skull (mesh or head CT) -> a face mesh in the input's own coordinates.

This stage reads the inputs, calls the method and writes files, nothing more: read the input (a
head CT is extracted first and its skin kept as the truth), locate the skull landmarks (given
ones win), place the head frame, render the skull depth map, run the chosen method
(`skull2face.methods.registry.run_method`, which returns a
`skull2face.methods.result.MethodResult`), and write its face: the whole head where the method
has one (``face-model``; ``skull2face`` with a fit-correcting model), else the mesh of its face
map. ``skull2face`` runs the trained generator of a model file (`load_model`; by default the
small model bundled with the package, written by `skull2face.stages.export`); ``mean-face`` and
``nearest-skull`` take reference maps of training heads from a dataset folder (``data``) or from
the model file.

Outputs: ``face.ply``, ``face.stl``, ``face.obj`` (mm, input coordinates), ``face.glb`` (glTF
binary, for Blender and web viewers, in glTF's own convention: metres, +Y up, the face toward +Z;
the transform from the input is ``predict.json``'s ``glb``), ``slicer/`` (a 3D Slicer bundle: skull, face, landmarks and a
scene file, `skull2face.io.slicer`), ``face_map.*`` and
``skull_map.*`` (depth maps with their render spec), ``skull_landmarks.json``, ``predict.png``
(skull and face together) and ``predict.json`` (settings, inputs and hashes -- the skull's, and
the ``--landmarks`` file's under ``input.landmarks``, null when none was given --, timings).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__, samples
from ..errors import InputError
from ..geometry.depthmap import HEAD_MAP_CENTRE, DepthMap, RenderSpec, render, save_depthmap
from ..geometry.frame import head_frame
from ..io.atomic import write_json
from ..io.landmarks import read_landmarks, write_landmarks
from ..io.meshes import MESH_SUFFIXES, load_mesh, save_mesh
from ..io.run_folder import run_folder
from ..io.slicer import write_slicer_bundle
from ..io.volumes import file_sha256, is_volume_path
from ..anatomy.locate import PoseSettings, locate
from ..anatomy.tissue import TissueSettings
from ..methods import registry
from ..options import check_options, nested, option
from ..dataset.fitted import PRIOR_FILE
from .export import prior_sidecar
from ..statistics.thickness_prior import ThicknessPrior

if TYPE_CHECKING:
    from ..methods.cgan import TrainedModel

log = logging.getLogger(__name__)

SAMPLED_METHODS = ("face-model", "skull2face")
"""Methods whose face is the fitted head model, so that plausible heads can be drawn around it."""
MAX_SAMPLES = 200
"""More samples than this add nothing to a 5-95 % band and cost minutes."""


@dataclass
class PredictSettings:
    """How to predict.

    Attributes
    ----------
    method : str
        One of `skull2face.methods.registry.names`.
    model : str or None
        Model file (bundle, exported generator, or run folder) for ``skull2face`` and the
        reference maps of ``mean-face``/``nearest-skull``; None: the bundled default model.
    data : str or None
        Dataset folder whose training split provides the reference maps (overrides the
        model's references).
    correction_gain : float or None
        ``skull2face`` only: override of the model file's per-region gains (`skull2face.methods.cgan.gains_of`).
    size, mm_per_px : int, float
        Render grid when the method has no model to dictate it (default 256 px at 1 mm).
    pose : PoseSettings
    tissue : TissueSettings
        The soft-tissue thickness table (a population's own, ``--thickness-table``), the build
        (``--build``: mean -1 SD / mean / +1 SD) and the sex and age group where the table has them.
    samples : int
        Also draw this many plausible whole heads and the uncertainty map
        (`skull2face.statistics.face_samples`; methods with a fitted head only).
    seed : int
        Seed of the samples.
    """

    method: str = option("face-model", choices=tuple(registry.names()),
                         help="face-model (the default: a real-face head model fitted to the skull and the "
                              "measured tissue thickness), skull2face (the cGAN's correction of that fit) or a "
                              "classic baseline")
    model: str | None = option(None, metavar="FILE", help="model file or run folder (default: the bundled model)")
    data: str | None = option(None, metavar="DIR", help="dataset folder for the mean-face / nearest-skull references")
    correction_gain: float | None = option(
        None, minimum=0.0, metavar="G",
        help="skull2face: the share of the generator's correction applied in every face region, overriding the "
             "gains the model file chose on leave-one-head-out folds (0: the fit unchanged; for ablations)")
    size: int = 256
    mm_per_px: float = 1.0
    pose: PoseSettings = nested(PoseSettings, title="coarse pose (before landmarks are known)")
    tissue: TissueSettings = nested(TissueSettings, title="soft-tissue thickness (population table, build, sex, age)")
    samples: int = option(0, minimum=0, metavar="N",
                          help="also draw N plausible whole heads consistent with the skull (samples/face_XX.ply, "
                               "samples.png) and the face's uncertainty map (uncertainty.ply, uncertainty.png): "
                               "face-model and skull2face only")
    seed: int = option(0, metavar="SEED", help="seed of --samples (the same seed draws the same heads)")

    def __post_init__(self) -> None:
        check_options(self)
        if self.correction_gain is not None and self.correction_gain > 1.0:
            raise ValueError(f"correction_gain must be <= 1, got {self.correction_gain}")
        if self.samples and self.method not in SAMPLED_METHODS:
            raise ValueError(f"--samples needs a method with a fitted whole head ({', '.join(SAMPLED_METHODS)}), "
                             f"not {self.method}")
        if self.samples > MAX_SAMPLES:
            raise ValueError(f"--samples must be <= {MAX_SAMPLES}, got {self.samples}")


def default_model_path() -> Path:
    """The small model bundled with the package."""
    return samples.data_dir() / "model" / "skull2face_default.pt"


def read_skull(input_path: str | os.PathLike, out: Path) -> dict:
    """Skull mesh (and the truth skin, for a CT) of an input, in the input's coordinates."""
    p = Path(input_path)
    if not p.exists():
        raise InputError(p, "not found")
    if is_volume_path(p):
        from ..geometry.surfaces import SurfaceSettings, extract_surfaces, volume_modality
        from ..io.volumes import read_volume

        vol = read_volume(p)
        kind, landmarks = volume_modality(vol), None
        if kind == "mr":  # a T1 MRI head: the skull under the skin, its landmarks under the face's
            from ..anatomy.mr_extract import add_mr_skull

            try:
                surf, landmarks, _ = add_mr_skull(vol, extract_surfaces(vol, SurfaceSettings(modality="mr")))
            except InputError as exc:
                why = str(exc)[len(str(p)) + 2:] if str(exc).startswith(f"{p}: ") else str(exc)
                raise InputError(p, "not in Hounsfield units (air is not near -1000), so read as a T1 MRI head, "
                                    f"but {why.rstrip('.')}. A CT exported in other units: extract it with "
                                    "`skull2face extract --intensity raw` and predict from its skull.ply") from None
            write_landmarks(landmarks, out / "mr_skull_landmarks.json")
        else:
            surf = extract_surfaces(vol)
        save_mesh(surf.skull, out / "skull.ply")
        save_mesh(surf.skin, out / "truth_skin.ply")
        return {"skull": surf.skull, "truth": surf.skin, "pose": "lps", "kind": kind, "landmarks": landmarks,
                "skull_path": out / "skull.ply", "truth_path": out / "truth_skin.ply"}
    if p.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(p, "expected a skull mesh (" + ", ".join(MESH_SUFFIXES) + ") or a head CT / T1 MRI volume")
    return {"skull": load_mesh(p), "truth": None, "pose": None, "kind": "mesh", "skull_path": p, "truth_path": None}


# ------------------------------------------------------------------------ model and references

def load_model(settings: PredictSettings) -> TrainedModel | None:
    """The settings' model file (bundle, exported generator or run folder), loaded; None when
    there is none and the method needs none (``data`` given).

    Raises
    ------
    InputError
        The file is missing (and needed) or not a model file.
    """
    import torch

    from ..methods.cgan import TrainedModel
    from ..training.checkpoints import generator_from, load_checkpoint, run_checkpoint

    path = Path(settings.model) if settings.model else default_model_path()
    if not path.exists():
        if settings.method == "skull2face" or not settings.data:
            raise InputError(path, "model not found: train one with `skull2face train` or pass --model")
        return None
    file = run_checkpoint(path) if path.is_dir() else path
    ck = load_checkpoint(file)  # read once: the generator, its meta, a bundle's references and gains
    g, meta = generator_from(ck, file)
    refs = ck.get("references") if path.is_file() else None
    if refs is not None:
        refs = {k: (v.float().numpy() if isinstance(v, torch.Tensor) else v) for k, v in refs.items()}
    calibration = ck.get("calibration") if path.is_file() else None
    return TrainedModel(g, meta, calibration, refs)


def prior_for(settings: PredictSettings, refs: dict | None) -> ThicknessPrior | None:
    """The thickness prior of the dataset (``--data``) or of the model bundle; None if neither has one."""
    if settings.data:
        path = Path(settings.data) / PRIOR_FILE
        return ThicknessPrior.load(path) if path.exists() else None
    if refs and refs.get("prior"):
        d = refs["prior"]
        return ThicknessPrior.from_arrays({k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in d.items()})
    return None


GLTF_M_PER_MM = 1e-3
"""glTF's unit is the metre (glTF 2.0 specification, 3.4 "Coordinate System and Units")."""


def glb_transform(frame: np.ndarray) -> np.ndarray:
    """Input coordinates (mm) -> ``face.glb``'s: the head frame (+y up, +z out of the face, the
    right-handed frame glTF viewers expect: +Y up, the front toward +Z) in metres.

    Parameters
    ----------
    frame : numpy.ndarray, shape (4, 4)
        Input -> head frame (mm).

    Returns
    -------
    numpy.ndarray, shape (4, 4), float64
    """
    return np.diag([GLTF_M_PER_MM] * 3 + [1.0]) @ np.asarray(frame, dtype=np.float64)


def _spec_for(settings: PredictSettings, grid: dict, frame: np.ndarray, sha: str) -> RenderSpec:
    """The render spec of the skull map: the model's or dataset's grid when there is one."""
    if grid:
        res, s = int(grid["resolution"]), float(grid["mm_per_px"])
        return RenderSpec(size=(res, res), mm_per_px=s, frame=frame, z_near=grid["z_near"], z_far=grid["z_far"],
                          centre=tuple(grid["centre"]), source_sha256={"skull": sha})
    return RenderSpec(size=(settings.size, settings.size), mm_per_px=settings.mm_per_px, frame=frame,
                      centre=HEAD_MAP_CENTRE, source_sha256={"skull": sha})


def _reference_maps(settings: PredictSettings, refs: dict | None, spec: RenderSpec):
    """(mean face DepthMap, [(skull, face) DepthMaps]) in the target's spec, from data or refs."""
    def dm(h):
        h = np.asarray(h, dtype=np.float32)
        return DepthMap(h, np.isfinite(h), spec)

    if settings.data:
        from ..methods.mean_face import mean_face
        from ..methods.references import load_training_pairs, resample_to

        pairs, _ = load_training_pairs(settings.data)
        ref_pairs = [(resample_to(s, spec), resample_to(f, spec)) for s, f in pairs]
        return dm(mean_face([f for _, f in ref_pairs]).height), ref_pairs
    if refs is None:
        raise InputError(settings.model or default_model_path(),
                         "this model holds no reference maps for the baselines: pass --data DATASET")
    return dm(refs["mean_face"]), [(dm(a), dm(b)) for a, b in zip(refs["skull"], refs["face"])]


# ------------------------------------------------------------------------------ the stage

def predict(input_path: str | os.PathLike, out_dir: str | os.PathLike, settings: PredictSettings | None = None,
            landmarks_path: str | os.PathLike | None = None, picture: bool = True) -> dict:
    """Predict the face of a skull mesh or head CT; write meshes, maps, picture and JSON.

    Returns
    -------
    dict
        The record written to ``predict.json`` (paths are relative to ``out_dir``).
    """
    settings = settings or PredictSettings()  # its method is one of the registry's (check_options)
    method = registry.METHODS[settings.method]
    if not Path(input_path).exists():
        raise InputError(input_path, "not found")
    with run_folder(out_dir, "predict", [input_path, landmarks_path, settings.model, settings.data,
                                         settings.tissue.thickness_table]) as out:
        return _predict(input_path, out, settings, method, landmarks_path, picture)


def _predict(input_path, out: Path, settings: PredictSettings, method, landmarks_path, picture: bool) -> dict:
    """`predict` into the claimed folder ``out``."""
    timings = {}
    t0 = time.perf_counter()
    given_record = None if not landmarks_path else {"path": str(Path(landmarks_path).resolve()),
                                                    "sha256": file_sha256(landmarks_path)}
    given = read_landmarks(landmarks_path, surface="skull") if landmarks_path else None
    model, prior, side_grid = None, None, {}
    if method.needs_model or (method.needs_references and not settings.data):
        model = load_model(settings)  # before the slow steps: a bad --model fails at once
    elif method.uses_prior and not settings.data and (settings.model or default_model_path().exists()):
        side = prior_sidecar(settings.model or default_model_path())
        if side.is_file():  # the model file's prior alone: no generator, no torch
            from .export import read_prior_sidecar

            prior, side_grid = read_prior_sidecar(side)
        else:
            model = load_model(settings)  # only its thickness prior
    refs = model.references if model is not None else None
    if prior is None:
        prior = prior_for(settings, refs)
    timings["model_s"] = time.perf_counter() - t0
    from ..anatomy.tissue import table_of

    tissue = table_of(settings.tissue)  # a bad table, or a --sex it cannot honour, fails before the slow steps
    src = read_skull(input_path, out)
    timings["read_s"] = time.perf_counter() - t0 - timings["model_s"]
    skull = src["skull"]
    pose = dataclasses.replace(settings.pose, pose=src["pose"] or settings.pose.pose)
    t = time.perf_counter()
    if given is None and src.get("landmarks") is not None:  # an MRI's skull landmarks, measured with its skull
        given, landmarks_path = src["landmarks"], out / "mr_skull_landmarks.json"
    lms, loc = locate(skull, src["skull_path"], "skull", given, pose, landmarks_path)
    timings["landmarks_s"] = time.perf_counter() - t
    try:
        frame = head_frame(lms.points, "skull")
    except ValueError as exc:
        from ..anatomy.detect.parts import summary

        gone = summary(sorted({q for m in lms.meta.values() for q in m.get("absent", ())}))
        raise InputError(input_path, (f"too little of the skull is left to place the head frame: {gone} missing "
                                      f"({exc})") if gone else
                         f"cannot place the head frame from the skull landmarks: {exc}") from None

    sha = file_sha256(input_path)
    meta = model.meta if model is not None else None
    grid = dict(side_grid)  # the model's grid, as when the model file itself gave the prior
    if meta is not None and (method.needs_model or (refs and not settings.data)):
        grid = {"resolution": meta.resolution, "mm_per_px": meta.mm_per_px, "z_near": meta.z_near,
                "z_far": meta.z_far, "centre": meta.centre}
    if method.needs_references and settings.data:
        from ..dataset.reader import load_manifest
        from ..geometry.depthmap import load_depthmap

        man = load_manifest(settings.data)
        first = man.samples[0]["files"].get("skull") or man.samples[0]["files"]["face"]
        ref = load_depthmap(man.root / first).spec  # the dataset's grid, so its maps are used as they are
        grid = {"resolution": ref.size[0], "mm_per_px": ref.mm_per_px, "z_near": ref.z_near, "z_far": ref.z_far,
                "centre": ref.centre}
    spec = _spec_for(settings, grid, frame.matrix, sha)
    t = time.perf_counter()
    skull_map = render(skull, spec)
    timings["render_s"] = time.perf_counter() - t

    t = time.perf_counter()
    mean, pairs = _reference_maps(settings, refs, spec) if method.needs_references else (None, None)
    options = {}
    if method.needs_model:  # the fit on face-model's grid: with no correction trusted, its head IS face-model's
        fit_spec = spec if (refs and not settings.data) else _spec_for(settings, {}, frame.matrix, sha)
        options = {"gain": settings.correction_gain, "fit_spec": fit_spec}
    if prior is not None and method.uses_table:  # the dense prior moved to the table's population and build
        from ..geometry.frame import apply
        from ..statistics.thickness_prior import for_population

        head_lms = {k: apply(frame.matrix, v) for k, v in lms.points.items()}
        prior = for_population(prior, tissue.population, head_lms, tissue.build_sd, tissue.source)
    result = registry.run_method(settings.method, spec=spec, skull_map=skull_map, skull_mesh=skull,
                                 skull_landmarks=lms.points, train_pairs=pairs, mean_map=mean, model=model,
                                 prior=prior, table=tissue.rows, **options)
    timings["method_s"] = time.perf_counter() - t
    if not result.face_map.mask.any():
        raise InputError(input_path, f"method {settings.method} produced an empty face map")

    t = time.perf_counter()
    face = result.face_mesh()
    outputs = {}
    for suffix in (".ply", ".stl", ".obj"):
        outputs[f"face{suffix}"] = save_mesh(face, out / f"face{suffix}").name
    glb = glb_transform(frame.matrix)  # glTF's own convention, so any viewer shows the head upright
    outputs["face.glb"] = save_mesh(face.copy().apply_transform(glb), out / "face.glb").name
    scene = write_slicer_bundle(out / "slicer", skull, face, lms, src["truth"])
    outputs["slicer"] = str(scene.relative_to(out))
    save_depthmap(result.face_map, out / "face_map")
    save_depthmap(skull_map, out / "skull_map")
    write_landmarks(lms, out / "skull_landmarks.json")
    timings["mesh_s"] = time.perf_counter() - t
    drawn = None
    if settings.samples:
        t = time.perf_counter()
        from .predict_samples import write_samples

        drawn = write_samples(out, face, skull, lms.points, options.get("fit_spec", spec), prior, tissue.rows,
                         settings, frame.matrix, picture)
        outputs.update(drawn.pop("outputs"))
        timings["samples_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    if picture:
        from ..report.pictures import prediction_figure, save_picture

        t = time.perf_counter()
        save_picture(prediction_figure(skull, face, src["truth"], frame.matrix), out / "predict.png")
        outputs["picture"] = "predict.png"
        timings["picture_s"] = time.perf_counter() - t  # after total_s, which it is not part of
    record = {
        "stage": "predict", "skull2face_version": __version__, "method": settings.method,
        "settings": dataclasses.asdict(settings),
        "input": {"path": str(Path(input_path).resolve()), "kind": src["kind"], "sha256": sha,
                  "landmarks": given_record},
        "model": ({"path": str(settings.model or default_model_path()), "resolution": meta.resolution, "k": meta.k,
                   "epoch": meta.epoch} if meta is not None else
                  {"path": str(prior_sidecar(settings.model or default_model_path())), "prior_only": True}
                  if side_grid else None),
        "landmarks": {k: v for k, v in lms.meta.items()}, "pose": loc["pose"],
        "frame": frame.to_json(), "spec": spec.to_json(), "method_info": result.record,
        "tissue": {**tissue.record(), "used_by_method": method.uses_table},
        "samples": drawn,
        "measurements": skull_measurements(skull, lms.points, frame.matrix),
        "truth": "truth_skin.ply" if src["truth"] is not None else None,
        "face": {"vertices": len(face.vertices), "faces": len(face.faces), "coordinates": "input's own, mm",
                 "whole_head": result.head is not None, "watertight": bool(face.is_watertight)},
        "outputs": outputs, "timings": {k: round(v, 3) for k, v in timings.items()},
        "glb": {"units": "m", "axes": "glTF: +Y up, +Z out of the face, +X the subject's left (the head frame), "
                                      "origin at nasion", "input_to_glb": glb.tolist()},
    }
    write_json(out / "predict.json", record)
    return record


def skull_measurements(skull, landmarks, frame: np.ndarray) -> list[dict]:
    """The skull's standard measurements for the record and the report
    (`skull2face.anatomy.measurements.measure_skull`; ``skull2face measure`` writes them alone)."""
    from ..anatomy.measurements import measure_skull

    return measure_skull(np.asarray(skull.vertices), landmarks, frame)


def echo(record: dict) -> str:
    """What ``skull2face predict`` prints: the method, the face, the time and the files."""
    line = (f"{record['method']}: face with {record['face']['vertices']} vertices in "
            f"{record['timings']['total_s']:.2f} s; wrote {', '.join(record['outputs'].values())} and predict.json")
    inferred = (record.get("method_info") or {}).get("inferred_without_bone") or []
    drawn = record.get("samples")
    if drawn:
        line += (f"\n{drawn['n']} plausible heads in samples/ (seed {drawn['seed']}); uncertainty of the face: "
                 f"median SD {drawn['face_sd_mm']['median']:.1f} mm, median 90 % band {drawn['face_band_mm']['median']:.1f} mm"
                 " (uncertainty.ply, uncertainty.png)")
    return "\n".join([line] + (["inferred without bone:"] + [f"  - {x}" for x in inferred] if inferred else []))
