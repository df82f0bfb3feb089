"""Stage ``dataset build``: real head CTs and real faces -> a C2F-style training folder.

What a dataset holds (format: ``docs/dataset-format.md``):

* **real pairs**: each CT gives one paired sample (skull map, face map, landmarks);
* **synthetic pairs** grown from each real head in 3D before rendering: a smooth shape warp
  of skull and skin together plus a soft-tissue rescale drawn from the published thickness
  table (`skull2face.dataset.synthetic`); every sample records its parameters;
* **unpaired skulls**: further, independent shape warps of the real skulls;
* **unpaired faces**: the real MRI skins and face scans first, then Surrey Face Model
  samples, placed in the head frame by fitting their landmarks to the mean face landmarks
  of the training pairs in the skull frame (so a face without a skull sits where a face
  over a skull would);
* a statistics report (grid of samples; population thickness against the published table).

Splits are by source head: every sample derived from a ``test_heads`` CT is in ``test``, so
no warp of a test head is ever trained on. Work is spread over a process pool; every sample's
random stream is derived from ``(seed, head, kind, index)``, so the result does not depend on
the number of workers.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import multiprocessing as mp
import numpy as np
import trimesh
from ..progress import progress

from .. import __version__
from ..errors import InputError
from ..geometry.depthmap import DEFAULT_Z_FAR, DEFAULT_Z_NEAR, HEAD_MAP_CENTRE, RenderSpec, render, save_depthmap
from ..geometry.frame import apply, head_frame, rigid_fit
from ..geometry.normals import HEAD_CENTRE, outward_normals_at
from ..io.atomic import write_json
from ..io.landmarks import write_landmarks
from ..anatomy.landmark_set import LandmarkSet
from ..options import check_options, option
from .fitted import PRIOR_FILE, training_prior, write_fit
from .heads import head_name, prepare_head, prepare_heads  # noqa: F401 (head_name, prepare_head: API)
from .quality import head_points, region_landmarks
from .weights import save_weight, weight_map

log = logging.getLogger(__name__)

_KIND_CODE = {"paired": 1, "unpaired-skull": 2, "unpaired-face": 3}
# LA targets are kept only where the bone faces the viewer: the head-frame z component of the
# outward normal must be at least this (cos 60 degrees).
MIN_NORMAL_Z = 0.5


@dataclass
class DatasetSettings:
    """Resolved settings of a dataset build (written to ``dataset.json``).

    Attributes
    ----------
    n_paired : int
        Synthetic paired samples per CT head (besides its real pair).
    n_skulls : int
        Unpaired skull samples per CT head.
    n_sfm : int
        Surrey Face Model samples (unpaired faces), in addition to the real faces.
    real_faces : bool
        Include the bundled real MRI skins and face scans as unpaired faces.
    test_heads : list of str or None
        CT head names (file stem) whose samples form the test split; None: ``headsq`` when it
        is among the CTs, else none.
    size, mm_per_px, z_near, z_far
        Render spec shared by every map.
    shape_amplitude : float
        Shape-warp size in population SDs (see `skull2face.geometry.tps`).
    target_faces : int
        Source meshes are decimated to about this many triangles before sampling (speed).
    head_weights : list of str
        ``PATTERN=W`` (shell-style pattern on head names, W in [0, 1]; the last match wins):
        how much a head counts in the thickness prior and in training (``heads.<name>.weight``
        in the manifest), e.g. ``pt_*=0.1`` for coarse radiotherapy heads. Default 1.
    seed, workers : int
    """

    n_paired: int = option(100, minimum=0, help="synthetic pairs per CT head")
    n_skulls: int = option(30, minimum=0, help="unpaired skulls per CT head")
    n_sfm: int = option(40, minimum=0, help="Surrey Face Model faces")
    real_faces: bool = option(True, help="include the bundled real MRI/scan faces")
    test_heads: list[str] | None = option(None, flag="--test-head", nargs="*", metavar="NAME",
                                          help="head(s) held out as the test split, by CT file stem (default: "
                                               "headsq when among the CTs)")
    size: int = option(256, minimum=8, help="map side in pixels")
    mm_per_px: float = option(1.0, above=0, help="pixel pitch in mm")
    z_near: float = DEFAULT_Z_NEAR
    z_far: float = DEFAULT_Z_FAR
    shape_amplitude: float = option(1.0, minimum=0, help="warp size in population SDs")
    target_faces: int = 120_000
    head_weights: list[str] = option(default_factory=list, flag="--head-weight", nargs="*", metavar="PATTERN=W",
                                     help="how much heads count in the prior and in training, by name pattern, "
                                          "e.g. 'pt_*=0.1' (default 1)")
    seed: int = option(0, help="seed of every random draw")
    workers: int = option(2, minimum=1, help="processes")

    def __post_init__(self) -> None:
        check_options(self)
        for item in self.head_weights:
            head_weight_of("", [item])  # raises ValueError on a malformed item


def head_weight_of(name: str, patterns: list[str]) -> float:
    """The weight of head ``name`` under ``PATTERN=W`` items (the last match wins; 1 without).

    Raises
    ------
    ValueError
        An item is not ``PATTERN=W`` with W a number in [0, 1].
    """
    from fnmatch import fnmatchcase

    weight = 1.0
    for item in patterns:
        pattern, sep, value = item.rpartition("=")
        try:
            w = float(value)
        except ValueError:
            w = float("nan")
        if not sep or not pattern or not 0.0 <= w <= 1.0:
            raise ValueError(f"--head-weight {item!r}: expected PATTERN=W with W in [0, 1], e.g. 'pt_*=0.1'")
        if fnmatchcase(name, pattern):
            weight = w
    return weight


def la_targets(skull: trimesh.Trimesh, skull_lms: dict, frame: np.ndarray) -> list:
    """``[name, s_i, s_i + t_i n_i]`` in head-frame mm for every skull landmark with a published
    thickness (mean of Hona & Stephan 2024; stand-ins as the table names them).

    ``n_i`` is the outward bone normal at the landmark by the same rule as the tissue-depth
    method's (`skull2face.geometry.normals.outward_normals_at` in the head frame, centre
    `HEAD_CENTRE`), so both put a landmark's published thickness in the same direction.
    """
    from ..anatomy.tissue import thickness_for

    names_, pts = [], []
    for name, p in skull_lms.items():
        p = np.asarray(p, dtype=np.float64)
        if np.all(np.isfinite(p)):
            names_.append(name)
            pts.append(p)
    if not pts:
        return []
    pts_h = apply(frame, np.array(pts))
    normals = outward_normals_at(pts_h, apply(frame, np.asarray(skull.vertices, dtype=np.float64)),
                                 skull.faces, HEAD_CENTRE)
    out = []
    for name, s_h, n in zip(names_, pts_h, normals):
        try:
            t = thickness_for(name).mean_mm
        except KeyError:
            continue
        # a depth map sees a surface from +z: where the bone faces sideways (zygion, gonion) the
        # map's height at s + t n is another part of the face (cheek edge, nose), not the target
        if n[2] < MIN_NORMAL_Z:
            continue
        tgt_h = s_h + t * n
        out.append([name, s_h.round(4).tolist(), tgt_h.round(4).tolist()])
    return out


# ------------------------------------------------------------------- worker-side sampling

_WORKER: dict = {}


def _init_worker(cache_path: str, out_dir: str, settings: dict) -> None:
    # Each worker loads the decimated real heads (and the thickness prior) once and builds their
    # tissue fields lazily.
    with open(cache_path, "rb") as f:
        _WORKER["heads"], _WORKER["prior"] = pickle.load(f)
    _WORKER["out"] = Path(out_dir)
    _WORKER["settings"] = settings
    _WORKER["fields"] = {}


def _field(name: str):
    from .tissue_rescale import TissueField

    if name not in _WORKER["fields"]:
        h = _WORKER["heads"][name]
        _WORKER["fields"][name] = TissueField(h["skull"], h["skin"])
    return _WORKER["fields"][name]


def _spec(settings: dict, frame: np.ndarray, sha: dict) -> RenderSpec:
    return RenderSpec(size=(settings["size"], settings["size"]), mm_per_px=settings["mm_per_px"],
                      frame=frame, z_near=settings["z_near"], z_far=settings["z_far"], centre=HEAD_MAP_CENTRE,
                      source_sha256=sha)


def _write_sample(out: Path, sid: str, spec: RenderSpec, skull=None, skin=None,
                  skull_lms: dict | None = None, skin_lms: dict | None = None, maps: dict | None = None,
                  quality: dict | None = None) -> dict:
    """Render and save a sample's maps and head-frame landmarks; ``maps`` (optional) receives
    the rendered DepthMaps by surface name. A paired sample of a gated head (``quality``) also
    gets its validity weight map (`skull2face.dataset.weights`; also ``maps["weight"]``)."""
    files = {}
    for surface, mesh, lms in (("skull", skull, skull_lms), ("face", skin, skin_lms)):
        if mesh is None:
            continue
        dm = render(mesh, spec)
        if maps is not None:
            maps[surface] = dm
        save_depthmap(dm, out / "maps" / f"{sid}_{surface}", preview=False)
        files[surface] = f"maps/{sid}_{surface}.npz"
        if lms:
            pts = {k: v for k, v in lms.items() if np.all(np.isfinite(v))}
            head = LandmarkSet(points={k: apply(spec.frame, np.asarray(v)[None])[0] for k, v in pts.items()},
                               surface=surface)
            write_landmarks(head, out / "landmarks" / f"{sid}_{surface}.json")
            files[f"{surface}_landmarks"] = f"landmarks/{sid}_{surface}.json"
        if surface == "face" and quality is not None and skull_lms:
            pts, _ = region_landmarks(head_points(spec.frame, skull_lms), head_points(spec.frame, lms or {}))
            wmap = weight_map(spec, dm.height, pts, quality)
            save_weight(out / "maps" / f"{sid}_weight.npz", wmap)
            files["weight"] = f"maps/{sid}_weight.npz"
            if maps is not None:
                maps["weight"] = wmap
    return files


def _synthetic(task: tuple) -> dict:
    """One synthetic sample of a real head: 'paired' (warp + tissue) or 'unpaired-skull'."""
    from .synthetic import sample_pair

    kind, name, head_index, index = task
    s = _WORKER["settings"]
    h = _WORKER["heads"][name]
    rng = np.random.default_rng([s["seed"], head_index, _KIND_CODE[kind], index])
    paired = kind == "paired"
    skull2, skin2, lsk, lsn, params = sample_pair(
        h["skull"], h["skin"], h["skull_landmarks"].points, h["skin_landmarks"].points, rng,
        shape_amplitude=s["shape_amplitude"], tissue=paired, field=_field(name) if paired else None)
    frame = head_frame(lsk, "skull").matrix
    sid = f"{name}-{'pair' if paired else 'skull'}{index:04d}"
    spec = _spec(s, frame, {"ct": h["sha256"]})
    maps: dict = {}
    files = _write_sample(_WORKER["out"], sid, spec, skull2, skin2 if paired else None, lsk, lsn if paired else None,
                          maps, h["quality"])
    files["fit"], fit_info = write_fit(_WORKER["out"], sid, skull2, lsk, maps["skull"], _WORKER["prior"])
    params["fit"] = fit_info
    sites = (params.get("tissue") or {}).get("sites", {})
    return {"id": sid, "kind": kind, "source_head": name, "real": False, "files": files,
            "la_targets": la_targets(skull2, lsk, frame),
            "params": {"seed": [s["seed"], head_index, _KIND_CODE[kind], index], **params,
                       "quality_status": h["quality"]["status"]},
            "_thickness": {k: v.get("achieved_mm") for k, v in sites.items()}}


# ---------------------------------------------------------------------------- the stage

def build_dataset(ct_paths: list[str | os.PathLike], out_dir: str | os.PathLike,
                  settings: DatasetSettings | None = None, faces: list | None = None) -> dict:
    """Build a dataset folder from real head CTs (and real faces).

    Parameters
    ----------
    ct_paths : list of path-like
        Head CTs with intact faces (the paired data). Head names are their file stems.
    out_dir : path-like
        Created; must not already hold a ``manifest.json`` (datasets are never overwritten).
    settings : DatasetSettings
    faces : list of FaceSource, optional
        Unpaired real faces; None means the bundled ones when ``settings.real_faces``.

    Returns
    -------
    dict
        The manifest written to ``manifest.json``.
    """
    from .faces import real_faces, sfm_faces

    settings = settings or DatasetSettings()
    out = Path(out_dir)
    if (out / "manifest.json").exists():
        raise InputError(out, "already holds a dataset (manifest.json); choose a new --out folder")
    names = [head_name(p) for p in ct_paths]
    if len(set(names)) != len(names):
        raise InputError(None, f"two CTs share a head name: {names}")
    if settings.test_heads is None:
        settings = dataclasses.replace(settings, test_heads=["headsq"] if "headsq" in names else [])
    unknown = sorted(set(settings.test_heads) - set(names))
    if unknown:
        raise InputError(None, f"--test-head {', '.join(unknown)} is not among the CT heads {names}")
    from fnmatch import fnmatchcase

    for item in settings.head_weights:  # a pattern that weighs no head is a typo, not a choice
        pattern = item.rpartition("=")[0]
        if not any(fnmatchcase(n, pattern) for n in names):
            raise InputError(None, f"--head-weight {item!r}: the pattern {pattern!r} matches none of the CT heads "
                                   f"({', '.join(names)}; names are the CT file stems)")
    for sub in ("maps", "landmarks", "report"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings = {}
    s = dataclasses.asdict(settings)

    # 1. real heads: extract, landmark and gate (a process pool), render the real pairs
    prepared = prepare_heads(ct_paths, settings.target_faces, settings.workers)
    timings["prepare_heads_s"] = time.perf_counter() - t0
    for h in prepared.values():  # summed over the workers (CPU seconds, not wall time)
        for k, v in h.get("timings", {}).items():
            timings[f"heads_{k}"] = timings.get(f"heads_{k}", 0.0) + v
    heads = {n: h for n, h in prepared.items() if h["quality"]["status"] != "rejected"}
    for n, h in prepared.items():
        if n not in heads:
            log.warning("head %s rejected, skipped: %s", n, h["quality"]["reasons"][0])
    if not heads:
        raise InputError(None, "no usable head: every CT was rejected by the quality gate ("
                         + "; ".join(f"{n}: {h['quality']['reasons'][0]}" for n, h in prepared.items()) + ")")
    lost = sorted(set(settings.test_heads) - set(heads))
    if lost:
        log.warning("test head(s) %s rejected: the test split has no samples from them", ", ".join(lost))
    samples_, real_maps = [], {}
    for name, h in heads.items():
        skull = trimesh.Trimesh(*h["skull"], process=False)
        skin = trimesh.Trimesh(*h["skin"], process=False)
        frame = head_frame(h["skull_landmarks"].points, "skull").matrix
        spec = _spec(s, frame, {"ct": h["sha256"]})
        sid = f"{name}-real"
        real_maps[name] = {}
        files = _write_sample(out, sid, spec, skull, skin, h["skull_landmarks"].points, h["skin_landmarks"].points,
                              real_maps[name], h["quality"])
        samples_.append({"id": sid, "kind": "paired", "source_head": name, "real": True, "files": files,
                         "la_targets": la_targets(skull, h["skull_landmarks"].points, frame),
                         "params": {"landmark_status": {**h["skull_landmarks"].meta, **h["skin_landmarks"].meta},
                                    "quality_status": h["quality"]["status"]}})

    # 1b. the thickness prior of the TRAINING heads' real pairs, and every real pair's fitted face
    t = time.perf_counter()
    # each training head counts by its weight map (0 where its gate excluded a region) and its head weight
    train_names = [n for n in real_maps if n not in settings.test_heads]
    prior = training_prior([(n, real_maps[n]["skull"], real_maps[n]["face"], heads[n]["skull_landmarks"].points)
                            for n in train_names], _spec(s, np.eye(4), {}),
                           weights=[head_weight_of(n, settings.head_weights) * real_maps[n].get("weight", 1.0)
                                    for n in train_names])
    prior.save(out / PRIOR_FILE)
    for rec in samples_:
        name = rec["source_head"]
        h = heads[name]
        rec["files"]["fit"], rec["params"]["fit"] = write_fit(
            out, rec["id"], trimesh.Trimesh(*h["skull"], process=False), h["skull_landmarks"].points,
            real_maps[name]["skull"], prior)
    timings["prior_s"] = time.perf_counter() - t

    # 2. synthetic pairs and unpaired skulls, over a process pool
    t = time.perf_counter()
    tasks = [(kind, name, i_head, i) for i_head, name in enumerate(heads)
             for kind, n in (("paired", settings.n_paired), ("unpaired-skull", settings.n_skulls))
             for i in range(n)]
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        cache = Path(tmp) / "heads.pkl"
        with open(cache, "wb") as f:
            pickle.dump((heads, prior), f)
        # spawn, not fork: Embree and BLAS thread pools do not survive a fork safely
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, settings.workers), mp_context=ctx,
                                 initializer=_init_worker, initargs=(str(cache), str(out), s)) as pool:
            for rec in progress(pool.map(_synthetic, tasks, chunksize=4), total=len(tasks), desc="synthetic samples",
                            unit="sample", disable=None):
                samples_.append(rec)
    timings["synthetic_s"] = time.perf_counter() - t

    # 3. unpaired faces, placed where a face over a training skull sits
    t = time.perf_counter()
    face_sources = list(faces) if faces is not None else (real_faces() if settings.real_faces else [])
    face_sources += sfm_faces(settings.n_sfm, np.random.default_rng([settings.seed, 0, 3, 0]))
    ref = _mean_face_landmarks(out, [r for r in samples_ if r["kind"] == "paired"
                                     and r["source_head"] not in settings.test_heads])
    for fs in progress(face_sources, desc="unpaired faces", unit="face", disable=None):
        common = [k for k in fs.landmarks.points if k in ref]
        if len(common) < 4:
            log.warning("face %s: only %d landmarks in common with the reference (%s); skipped",
                        fs.name, len(common), common)
            continue
        frame = rigid_fit(np.array([fs.landmarks.points[k] for k in common]), np.array([ref[k] for k in common]))
        spec = _spec(s, frame, {})
        sid = f"face-{fs.name}"
        files = _write_sample(out, sid, spec, skin=fs.mesh, skin_lms=fs.landmarks.points)
        samples_.append({"id": sid, "kind": "unpaired-face", "source_head": fs.name, "real": fs.real,
                         "files": files, "la_targets": [],
                         "params": {"origin": fs.origin, "fit_landmarks": common, **fs.params}})
    timings["faces_s"] = time.perf_counter() - t

    for r in samples_:
        r["split"] = "test" if r["source_head"] in settings.test_heads else "train"
    thickness = [r.pop("_thickness", None) for r in samples_]
    manifest = {
        "format": "skull2face-dataset", "version": 1,
        "size": [settings.size, settings.size], "mm_per_px": settings.mm_per_px,
        "z_near": settings.z_near, "z_far": settings.z_far,
        "heads": {n: {"split": "test" if n in settings.test_heads else "train", "kind": "ct",
                      "sha256": h["sha256"], "spacing_mm": h["spacing"], "quality": h["quality"],
                      "weight": head_weight_of(n, settings.head_weights)}
                  for n, h in prepared.items()},
        "prior": {"file": PRIOR_FILE, "heads": list(prior.heads), "table": prior.table},
        "samples": samples_,
    }
    write_json(out / "manifest.json", manifest)
    t = time.perf_counter()
    from .report import write_report

    report = write_report(out, [th for th in thickness if th], manifest["heads"])
    timings["report_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    counts = {}
    for r in samples_:
        key = f"{r['kind']}/{r['split']}/{'real' if r['real'] else 'synthetic'}"
        counts[key] = counts.get(key, 0) + 1
    write_json(out / "dataset.json", {
        "stage": "dataset build", "skull2face_version": __version__, "settings": s,
        "cts": [str(Path(p).resolve()) for p in ct_paths], "counts": counts,
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "samples_per_second": round(len(tasks) / max(timings["synthetic_s"], 1e-9), 2),
        "report": report,
    })
    from .report import head_table

    log.info("quality gate, per head:\n%s", head_table(manifest["heads"]))
    log.info("dataset: %d samples in %.0f s (%s)", len(samples_), timings["total_s"], counts)
    return manifest


def _mean_face_landmarks(out: Path, paired: list) -> dict:
    """Mean head-frame position of each face landmark over the given paired samples."""
    from ..io.landmarks import read_landmarks

    acc: dict[str, list] = {}
    for r in paired:
        rel = r["files"].get("face_landmarks")
        if not rel:
            continue
        for k, v in read_landmarks(out / rel).points.items():
            acc.setdefault(k, []).append(v)
    return {k: np.mean(v, axis=0) for k, v in acc.items()}
