"""Stage ``predict``: a skull (mesh or head CT) -> a face mesh in the input's own coordinates.

Steps: read the input (a head CT is extracted first and its skin kept as the truth), locate
the skull landmarks (given ones win), place the head frame, render the skull depth map, turn
it into a face depth map with the chosen method, and mesh that map back into the input's
coordinates. The methods are those of `skull2face.methods.registry`. The ``skull2face`` method
runs the trained generator (a model file from ``skull2face train``; by default the small model
bundled with the package) through `generator_face`; the methods that need reference maps of
training heads (``mean-face``, ``nearest-skull``) take them from a dataset folder (``data``) or
from the references stored in a model bundle (`make_bundle`).

Outputs: ``face.ply``, ``face.stl``, ``face.obj``, ``face.glb`` (glTF binary, for Blender and web
viewers; mm, input coordinates), ``slicer/`` (a 3D Slicer bundle: skull, face, landmarks and a
scene file, `skull2face.io.slicer`), ``face_map.*`` and
``skull_map.*`` (depth maps with their render spec), ``skull_landmarks.json``, ``predict.png``
(skull and face together) and ``predict.json`` (settings, inputs and hashes, timings).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__, samples
from ..errors import InputError
from ..geometry import codec
from ..geometry.depthmap import HEAD_MAP_CENTRE, DepthMap, RenderSpec, depth_to_mesh, render, save_depthmap
from ..geometry.frame import head_frame
from ..geometry.resample import block_mean
from ..io.atomic import write_json
from ..io.landmarks import read_landmarks, write_landmarks
from ..io.meshes import MESH_SUFFIXES, load_mesh, save_mesh
from ..io.run_folder import run_folder
from ..io.slicer import write_slicer_bundle
from ..io.volumes import file_sha256, is_volume_path
from ..anatomy.locate import PoseSettings, locate
from ..methods import registry
from ..options import check_options, nested, option
from ..training.meta import ModelMeta
from ..dataset.fitted import PRIOR_FILE
from ..statistics.thickness_prior import ThicknessPrior

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "skull2face-bundle"


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
    size, mm_per_px : int, float
        Render grid when the method has no model to dictate it (default 256 px at 1 mm).
    pose : PoseSettings
    """

    method: str = option("face-model", choices=tuple(registry.names()),
                         help="face-model (the default: a real-face head model fitted to the skull and the "
                              "measured tissue thickness), skull2face (the cGAN's correction of that fit) or a "
                              "classic baseline")
    model: str | None = option(None, metavar="FILE", help="model file or run folder (default: the bundled model)")
    data: str | None = option(None, metavar="DIR", help="dataset folder for the mean-face / nearest-skull references")
    size: int = 256
    mm_per_px: float = 1.0
    pose: PoseSettings = nested(PoseSettings, title="coarse pose (before landmarks are known)")

    def __post_init__(self) -> None:
        check_options(self)


def default_model_path() -> Path:
    """The small model bundled with the package."""
    return samples.data_dir() / "model" / "skull2face_default.pt"


def read_skull(input_path: str | os.PathLike, out: Path) -> dict:
    """Skull mesh (and the truth skin, for a CT) of an input, in the input's coordinates."""
    p = Path(input_path)
    if not p.exists():
        raise InputError(p, "not found")
    if is_volume_path(p):
        from ..geometry.surfaces import extract_surfaces
        from ..io.volumes import read_volume

        surf = extract_surfaces(read_volume(p))
        save_mesh(surf.skull, out / "skull.ply")
        save_mesh(surf.skin, out / "truth_skin.ply")
        return {"skull": surf.skull, "truth": surf.skin, "pose": "lps", "kind": "ct",
                "skull_path": out / "skull.ply", "truth_path": out / "truth_skin.ply"}
    if p.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(p, "expected a skull mesh (" + ", ".join(MESH_SUFFIXES) + ") or a head CT volume")
    return {"skull": load_mesh(p), "truth": None, "pose": None, "kind": "mesh", "skull_path": p, "truth_path": None}


# ------------------------------------------------------------------------ model and references

def load_model(settings: PredictSettings):
    """(generator or None, `ModelMeta` or {}, references) for the settings' model (bundle or generator).

    Without a model file (``{}`` as meta) only when the method needs none and ``data`` is given.
    """
    import torch

    from ..training.checkpoints import generator_from, load_checkpoint, run_checkpoint

    path = Path(settings.model) if settings.model else default_model_path()
    if not path.exists():
        if settings.method == "skull2face" or not settings.data:
            raise InputError(path, "model not found: train one with `skull2face train` or pass --model")
        return None, {}, None
    file = run_checkpoint(path) if path.is_dir() else path
    ck = load_checkpoint(file)  # read once: the generator, its meta and a bundle's references
    g, meta = generator_from(ck, file)
    refs = ck.get("references") if path.is_file() else None
    if refs is not None:
        refs = {k: (v.float().numpy() if isinstance(v, torch.Tensor) else v) for k, v in refs.items()}
    return g, meta, refs


def make_bundle(run_dir: str | os.PathLike, data_dir: str | os.PathLike, path: str | os.PathLike,
                n_refs: int = 24) -> Path:
    """Export a run's generator with the baselines' references: a self-contained model file.

    The references are the training split's mean face map and ``n_refs`` training pairs
    (skull and face heights, float16, at the model's resolution) for ``nearest-skull``.
    """
    from ..io.run_folder import out_file

    path = Path(path)
    with out_file(path, [Path(run_dir) / "best.pt", Path(run_dir) / "last.pt", data_dir]):
        return _bundle(run_dir, data_dir, path, n_refs)


def _bundle(run_dir, data_dir, path: Path, n_refs: int) -> Path:
    """`make_bundle` once ``path`` is checked and claimed."""
    import torch

    from ..dataset.reader import load_manifest
    from ..geometry.depthmap import load_depthmap
    from ..io.atomic import atomic_path
    from ..methods.mean_face import mean_face
    from ..training.checkpoints import export_generator

    export_generator(run_dir, path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    res = int(payload["meta"]["resolution"])
    man = load_manifest(data_dir)
    pairs = [s for s in man.samples if s["kind"] == "paired" and s["split"] == "train"]
    rng = np.random.default_rng(0)
    chosen = [pairs[i] for i in sorted(rng.permutation(len(pairs))[:n_refs])]
    if any(s["real"] for s in pairs):
        chosen = [s for s in pairs if s["real"]] + [s for s in chosen if not s["real"]][: n_refs - 1]

    def at_res(dm: DepthMap) -> np.ndarray:
        return block_mean_mm(dm.height, res).astype(np.float16)

    faces = [load_depthmap(man.root / s["files"]["face"]) for s in pairs]
    mean = mean_face(faces).height
    # tensors, not numpy arrays: the file must load with torch.load(weights_only=True)
    refs = {"resolution": res, "ids": [s["id"] for s in chosen],
            "skull": torch.from_numpy(np.stack([at_res(load_depthmap(man.root / s["files"]["skull"]))
                                                for s in chosen])),
            "face": torch.from_numpy(np.stack([at_res(load_depthmap(man.root / s["files"]["face"])) for s in chosen])),
            "mean_face": torch.from_numpy(at_res(DepthMap(mean.astype(np.float32), np.isfinite(mean), faces[0].spec)))}
    prior_path = man.root / PRIOR_FILE
    if prior_path.exists():
        refs["prior"] = prior_to_refs(ThicknessPrior.load(prior_path))
    payload["references"] = refs
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def prior_to_refs(prior: ThicknessPrior) -> dict:
    """The thickness prior as a model bundle stores it (tensors and plain values, so the file
    loads with ``torch.load(weights_only=True)``)."""
    import torch

    def plain(v):
        a = np.asarray(v)
        if a.ndim and a.dtype.kind in "fiu":
            return torch.from_numpy(np.ascontiguousarray(a))
        return a.tolist()  # numbers, strings and lists of them

    return {key: plain(v) for key, v in prior.to_arrays().items()}


def prior_for(settings: PredictSettings, refs: dict | None) -> ThicknessPrior | None:
    """The thickness prior of the dataset (``--data``) or of the model bundle; None if neither has one."""
    if settings.data:
        path = Path(settings.data) / PRIOR_FILE
        return ThicknessPrior.load(path) if path.exists() else None
    if refs and refs.get("prior"):
        d = refs["prior"]
        return ThicknessPrior.from_arrays({k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in d.items()})
    return None


def block_mean_mm(height: np.ndarray, res: int) -> np.ndarray:
    """Downsample a height map (H, W) float32 mm, NaN off-surface, to (res, res): the mean of
    each block's valid pixels where more than half are valid, else NaN (as the training data)."""
    h, w = height.shape
    if h % res or w % res:
        raise ValueError(f"map size {(h, w)} is not a multiple of {res}")
    if h == w == res:
        return height.astype(np.float32)
    mean, valid = block_mean(height, np.isfinite(height), (h // res, w // res))
    return np.where(valid, mean, np.nan).astype(np.float32)


def _spec_for(settings: PredictSettings, grid: dict, frame: np.ndarray, sha: str) -> RenderSpec:
    """The render spec of the skull map: the model's or dataset's grid when there is one."""
    if grid:
        res, s = int(grid["resolution"]), float(grid["mm_per_px"])
        return RenderSpec(size=(res, res), mm_per_px=s, frame=frame, z_near=grid["z_near"], z_far=grid["z_far"],
                          centre=tuple(grid["centre"]), source_sha256={"skull": sha})
    return RenderSpec(size=(settings.size, settings.size), mm_per_px=settings.mm_per_px, frame=frame,
                      centre=HEAD_MAP_CENTRE, source_sha256={"skull": sha})


def generator_face(g, meta: ModelMeta, skull_map: DepthMap, fit_map: DepthMap | None = None) -> DepthMap:
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
    from ..geometry.depthmap import normalise

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
    if with_fit:
        # The generator corrects the fit's heights; the silhouette is the fitted head's (a whole
        # head, whatever the training CTs' fields of view cut off).
        mask = np.isfinite(fit_map.height)
    base = None
    if with_fit:
        from ..statistics.skull_fit import fit_base_mm

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


def _fit_for(meta: ModelMeta, skull, landmarks, skull_map: DepthMap, prior, info: dict) -> DepthMap | None:
    """The face-model fit a ``base="fit"`` generator corrects (None for other generators)."""
    if not (meta.residual and meta.base == "fit"):
        return None
    from ..statistics.skull_fit import fitted_face

    fit_info: dict = {}
    fm = fitted_face(skull, landmarks, skull_map.spec, prior=prior, skull_map=skull_map, info=fit_info)
    fit_info.pop("_head", None)  # the whole head is the face-model method's output, not this one's
    info["face_model_fit"] = fit_info
    return fm


def _reference_maps(settings: PredictSettings, refs: dict | None, spec: RenderSpec):
    """(mean face DepthMap, [(skull, face) DepthMaps]) in the target's spec, from data or refs."""
    def dm(h):
        h = np.asarray(h, dtype=np.float32)
        return DepthMap(h, np.isfinite(h), spec)

    if settings.data:
        from ..methods.mean_face import mean_face
        from ..methods.references import resample_to
        from ..dataset.reader import load_manifest
        from ..geometry.depthmap import load_depthmap

        man = load_manifest(settings.data)
        pairs = [s for s in man.samples if s["kind"] == "paired" and s["split"] == "train"]

        def at(rel):
            return resample_to(load_depthmap(man.root / rel), spec)

        ref_pairs = [(at(s["files"]["skull"]), at(s["files"]["face"])) for s in pairs]
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
    with run_folder(out_dir, "predict", [input_path, landmarks_path, settings.model, settings.data]) as out:
        return _predict(input_path, out, settings, method, landmarks_path, picture)


def _predict(input_path, out: Path, settings: PredictSettings, method, landmarks_path, picture: bool) -> dict:
    """`predict` into the claimed folder ``out``."""
    timings = {}
    t0 = time.perf_counter()
    given = read_landmarks(landmarks_path, surface="skull") if landmarks_path else None
    g, meta, refs = (None, {}, None)
    if method.needs_model or (method.needs_references and not settings.data):
        g, meta, refs = load_model(settings)  # before the slow steps: a bad --model fails at once
    elif method.uses_prior and not settings.data and (settings.model or default_model_path().exists()):
        _, _, refs = load_model(settings)  # only its thickness prior
    prior = prior_for(settings, refs)
    timings["model_s"] = time.perf_counter() - t0
    src = read_skull(input_path, out)
    timings["read_s"] = time.perf_counter() - t0 - timings["model_s"]
    skull = src["skull"]
    pose = dataclasses.replace(settings.pose, pose=src["pose"] or settings.pose.pose)
    t = time.perf_counter()
    lms, loc = locate(skull, src["skull_path"], "skull", given, pose, landmarks_path)
    timings["landmarks_s"] = time.perf_counter() - t
    try:
        frame = head_frame(lms.points, "skull")
    except ValueError as exc:
        raise InputError(input_path, f"cannot place the head frame from the skull landmarks: {exc}") from None

    sha = file_sha256(input_path)
    grid = {}
    if meta and (method.needs_model or (refs and not settings.data)):
        grid = {"resolution": meta.resolution, "mm_per_px": meta.mm_per_px, "z_near": meta.z_near,
                "z_far": meta.z_far, "centre": meta.centre}
    if method.needs_references and settings.data:
        from ..dataset.reader import load_manifest

        man = load_manifest(settings.data)
        first = man.samples[0]["files"].get("skull") or man.samples[0]["files"]["face"]
        from ..geometry.depthmap import load_depthmap

        ref = load_depthmap(man.root / first).spec  # the dataset's grid, so its maps are used as they are
        grid = {"resolution": ref.size[0], "mm_per_px": ref.mm_per_px, "z_near": ref.z_near, "z_far": ref.z_far,
                "centre": ref.centre}
    spec = _spec_for(settings, grid, frame.matrix, sha)
    t = time.perf_counter()
    skull_map = render(skull, spec)
    timings["render_s"] = time.perf_counter() - t

    t = time.perf_counter()
    info: dict = {}
    mean, pairs = _reference_maps(settings, refs, spec) if method.needs_references else (None, None)
    face_map = registry.predict_face_map(
        settings.method, spec=spec, skull_map=skull_map, skull_mesh=skull, skull_landmarks=lms.points,
        train_pairs=pairs, mean_map=mean, info=info, prior=prior,
        generator=(lambda m: generator_face(g, meta, m, _fit_for(meta, skull, lms.points, m, prior, info)))
        if method.needs_model else None)
    timings["method_s"] = time.perf_counter() - t
    if not face_map.mask.any():
        raise InputError(input_path, f"method {settings.method} produced an empty face map")
    head = info.pop("_head", None)  # face-model: the whole fitted head, not only what the front sees

    t = time.perf_counter()
    if head is not None:
        face = head
    else:
        face = depth_to_mesh(face_map)
        face.remove_unreferenced_vertices()
    outputs = {}
    for suffix in (".ply", ".stl", ".obj", ".glb"):
        outputs[f"face{suffix}"] = save_mesh(face, out / f"face{suffix}").name
    scene = write_slicer_bundle(out / "slicer", skull, face, lms, src["truth"])
    outputs["slicer"] = str(scene.relative_to(out))
    save_depthmap(face_map, out / "face_map")
    save_depthmap(skull_map, out / "skull_map")
    write_landmarks(lms, out / "skull_landmarks.json")
    timings["mesh_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    if picture:
        from ..report.pictures import prediction_figure, save_png

        save_png(prediction_figure(skull, face, src["truth"], frame.matrix), out / "predict.png")
        outputs["picture"] = "predict.png"
    record = {
        "stage": "predict", "skull2face_version": __version__, "method": settings.method,
        "settings": dataclasses.asdict(settings),
        "input": {"path": str(Path(input_path).resolve()), "kind": src["kind"], "sha256": sha},
        "model": None if not meta else {"path": str(settings.model or default_model_path()),
                                        "resolution": meta.resolution, "k": meta.k,
                                        "epoch": meta.epoch},
        "landmarks": {k: v for k, v in lms.meta.items()}, "pose": loc["pose"],
        "frame": frame.to_json(), "spec": spec.to_json(), "method_info": info,
        "truth": "truth_skin.ply" if src["truth"] is not None else None,
        "face": {"vertices": len(face.vertices), "faces": len(face.faces), "coordinates": "input's own, mm"},
        "outputs": outputs, "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    write_json(out / "predict.json", record)
    return record


def echo(record: dict) -> str:
    """What ``skull2face predict`` prints: the method, the face, the time and the files."""
    line = (f"{record['method']}: face with {record['face']['vertices']} vertices in "
            f"{record['timings']['total_s']:.2f} s; wrote {', '.join(record['outputs'].values())} and predict.json")
    inferred = (record.get("method_info") or {}).get("inferred_without_bone") or []
    return "\n".join([line] + (["inferred without bone:"] + [f"  - {x}" for x in inferred] if inferred else []))


def echo_bundle(path: Path) -> str:
    """What ``skull2face export`` prints."""
    return f"wrote {path} ({Path(path).stat().st_size / 1e6:.1f} MB)"
