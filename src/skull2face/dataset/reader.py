"""Read a dataset folder into numpy arrays for training (torch-free).

The folder and its ``manifest.json`` are specified in ``docs/dataset-format.md``. In short:
every sample is ``paired`` (skull + face of one head), ``unpaired-skull`` or ``unpaired-face``;
its maps are ``maps/<id>_skull.npz`` / ``maps/<id>_face.npz`` (float32 head-frame heights in
mm, NaN off the surface, each with a ``.json`` render spec); every sample with a skull lists
``la_targets``: per skull landmark ``[name, s_i, s_i + t_i n_i]`` in head-frame mm, where
``t_i`` is the published soft-tissue thickness along the bone's outward normal ``n_i``.

`load_arrays` stacks samples into the arrays a network needs:

======================  =================  =======  ============================================
key                     shape              dtype    meaning
======================  =================  =======  ============================================
``id``, ``kind``,       (N,)               str      manifest fields of each sample
``split``,
``source_head``
``real``                (N,)               bool     real head (not a synthetic warp)
``has_skull``,          (N,)               bool     which maps the sample has
``has_face``
``skull``, ``face``     (N, 1, H, W)       float32  normalised heights ``u ** k`` in [0, 1], with
                                                    ``u = (z - z_near) / (z_far - z_near)``
                                                    clipped to [0, 1]; 0 off the surface and for a
                                                    missing map
``skull_mask``,         (N, 1, H, W)       float32  1 where the surface exists, else 0
``face_mask``
``fit``, ``fit_mask``  (N, 1, H, W)       float32  the face-model fit over the sample's skull
                                                    (`skull2face.statistics.skull_fit`), normalised
                                                    like ``face``; 0 where the dataset has none
``has_fit``             (N,)               bool     the sample has a fitted-face map
``face_weight``         (N, 1, H, W)       float32  how much each face pixel counts in training, in
                                                    [0, 1]: the sample's ``files.weight`` map (0
                                                    where its head's region is not trusted) times
                                                    its head's ``heads.<name>.weight``; 1 without
``head_weight``         (N,)               float32  ``heads.<source_head>.weight`` (default 1)
``la_names``            (L,)               str      landmark names, union over the samples
``la_px``               (N, L, 2)          float32  (row, col) pixel of the target ``s_i + t_i n_i``;
                                                    integers are pixel centres
``la_height``           (N, L)             float32  normalised height of the target
``la_valid``            (N, L)             bool     target known, inside the image and inside
                                                    ``[z_near, z_far]``
``size``                (2,)               int64    (H, W)
``centre``              (2,)               float64  head-frame (x, y) of the image centre (mm),
                                                    from the maps' render specs
``mm_per_px``, ``k``,   ()                 float64  pixel pitch (mm), exponent, depth range (mm)
``z_near``, ``z_far``
======================  =================  =======  ============================================

`downsample_arrays` makes the low-resolution copies used by staged training; `network_input`
stacks what the generator sees.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, finite_number
from ..geometry.depthmap import RenderSpec, load_depthmap, normalise

from .arrays import downsample_arrays, downsample_map, network_input, subset  # noqa: E402  (re-exported)

FORMAT = "skull2face-dataset"
VERSION = 1
MANIFEST = "manifest.json"
KINDS = ("paired", "unpaired-skull", "unpaired-face")
SPLITS = ("train", "test")
# Which map files each kind of sample must name.
_NEEDS = {"paired": ("skull", "face"), "unpaired-skull": ("skull",), "unpaired-face": ("face",)}

from .arrays import MAP_PARTS as _MAP_PARTS, PER_SAMPLE_KEYS  # noqa: E402


@dataclass
class Manifest:
    """A validated ``manifest.json``.

    Attributes
    ----------
    root : pathlib.Path
        The dataset folder; file paths in ``samples`` are relative to it.
    size : (int, int)
        Map height and width in pixels, shared by every map.
    mm_per_px, z_near, z_far : float
        Pixel pitch and depth range (mm), shared by every map.
    heads : dict of str to dict
        Source heads, e.g. ``{"headsq": {"split": "test", "kind": "ct"}}``.
    samples : list of dict
        The samples as in the file, with ``real`` (default False), ``source_head`` (default
        None) and ``la_targets`` (default ``[]``) filled in.
    raw : dict
        The whole parsed file.
    """

    root: Path
    size: tuple[int, int]
    mm_per_px: float
    z_near: float
    z_far: float
    heads: dict[str, dict]
    samples: list[dict]
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def path(self) -> Path:
        """Path of ``manifest.json``."""
        return self.root / MANIFEST

    def spec(self) -> RenderSpec:
        """A render spec with the dataset's size, pitch and depth range (identity frame).

        Enough for `normalise`. Pixel positions need the maps' own specs, which also carry the
        image centre (`load_arrays` uses those).
        """
        return RenderSpec(size=self.size, mm_per_px=self.mm_per_px, z_near=self.z_near, z_far=self.z_far)

    def select(
        self,
        split: str | None = None,
        kinds: Iterable[str] | str | None = None,
        real: bool | None = None,
    ) -> list[dict]:
        """Samples matching every given criterion, in manifest order.

        Parameters
        ----------
        split : {"train", "test"}, optional
        kinds : str or iterable of str, optional
            One or more of ``KINDS``.
        real : bool, optional
        """
        if isinstance(kinds, str):
            kinds = (kinds,)
        kinds = None if kinds is None else set(kinds)
        return [
            s for s in self.samples
            if (split is None or s["split"] == split)
            and (kinds is None or s["kind"] in kinds)
            and (real is None or s["real"] == real)
        ]

    def by_id(self, sample_id: str) -> dict:
        """The sample with this id (KeyError if there is none)."""
        for s in self.samples:
            if s["id"] == sample_id:
                return s
        raise KeyError(sample_id)


_FORMAT_HINT = " (see docs/dataset-format.md)"


def _bad(path: Path, problem: str) -> InputError:
    return InputError(path, f"{problem}{_FORMAT_HINT}")


def load_manifest(dataset_dir: str | os.PathLike) -> Manifest:
    """Read and validate ``<dataset_dir>/manifest.json``.

    Parameters
    ----------
    dataset_dir : path-like
        The dataset folder (or the ``manifest.json`` inside it).

    Returns
    -------
    Manifest

    Raises
    ------
    InputError
        Naming the folder or ``manifest.json`` when the folder or file is missing, is not
        JSON, is not a skull2face dataset manifest, or holds an invalid sample (unknown kind or
        split, missing map file names, duplicate id, a source head in both splits, malformed
        ``la_targets``). Map files themselves are only opened by `load_arrays`.
    """
    root = Path(dataset_dir)
    if root.name == MANIFEST and root.is_file():
        root = root.parent
    if not root.is_dir():
        raise InputError(root, "dataset folder not found")
    path = root / MANIFEST
    if not path.is_file():
        raise _bad(path, "manifest.json not found; is this a dataset folder built by "
                         "'skull2face dataset build'?")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"cannot read manifest: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        fmt = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise _bad(path, f"not a skull2face dataset manifest (format {fmt!r}, expected {FORMAT!r})")
    if raw.get("version") != VERSION:
        raise _bad(path, f"unsupported manifest version {raw.get('version')!r} (this reader knows {VERSION})")
    size = raw.get("size")
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise _bad(path, f"size must be [H, W] with positive integers, got {size!r}")
    mm_per_px = finite_number(raw.get("mm_per_px"), path, "mm_per_px", _FORMAT_HINT)
    z_near = finite_number(raw.get("z_near"), path, "z_near", _FORMAT_HINT)
    z_far = finite_number(raw.get("z_far"), path, "z_far", _FORMAT_HINT)
    if mm_per_px <= 0 or z_near >= z_far:
        raise _bad(path, f"need mm_per_px > 0 and z_near < z_far, got {mm_per_px}, {z_near}, {z_far}")
    heads = raw.get("heads", {})
    if not isinstance(heads, dict):
        raise _bad(path, "heads must be an object")
    samples = raw.get("samples")
    if not isinstance(samples, list):
        raise _bad(path, "samples must be a list")

    seen: set[str] = set()
    head_split: dict[str, str] = {
        str(h): v["split"] for h, v in heads.items() if isinstance(v, dict) and "split" in v
    }
    out = []
    for i, s in enumerate(samples):
        where = f"samples[{i}]"
        if not isinstance(s, dict):
            raise _bad(path, f"{where} must be an object")
        sid = s.get("id")
        if not isinstance(sid, str) or not sid:
            raise _bad(path, f"{where} has no id")
        where = f"sample {sid!r}"
        if sid in seen:
            raise _bad(path, f"duplicate {where}")
        seen.add(sid)
        kind, split = s.get("kind"), s.get("split")
        if kind not in KINDS:
            raise _bad(path, f"{where}: kind must be one of {KINDS}, got {kind!r}")
        if split not in SPLITS:
            raise _bad(path, f"{where}: split must be one of {SPLITS}, got {split!r}")
        files = s.get("files")
        if not isinstance(files, dict):
            raise _bad(path, f"{where}: files must be an object")
        for need in _NEEDS[kind]:
            if not isinstance(files.get(need), str) or not files[need]:
                raise _bad(path, f"{where}: a {kind} sample needs files.{need}")
        real = s.get("real", False)
        if not isinstance(real, bool):
            raise _bad(path, f"{where}: real must be true or false, got {real!r}")
        head = s.get("source_head")
        if head is not None:
            head = str(head)
            # The split is by source head; a head in both splits would leak test faces.
            if head_split.setdefault(head, split) != split:
                raise _bad(path, f"{where}: source head {head!r} is in both train and test")
        la = s.get("la_targets", []) if "skull" in _NEEDS[kind] else []
        out.append({**s, "real": real, "source_head": head, "la_targets": _check_la(la, path, where)})

    return Manifest(root=root, size=(size[0], size[1]), mm_per_px=mm_per_px, z_near=z_near, z_far=z_far,
                    heads=heads, samples=out, raw=raw)


def _check_la(la: Any, path: Path, where: str) -> list:
    """Validate ``la_targets``: a list of ``[name, [x, y, z], [tx, ty, tz] or null]``."""
    if la is None:
        return []
    if not isinstance(la, list):
        raise _bad(path, f"{where}: la_targets must be a list")
    for j, entry in enumerate(la):
        ok = isinstance(entry, (list, tuple)) and len(entry) == 3 and isinstance(entry[0], str)
        if ok:
            for point in entry[1:]:
                # A null target means the thickness is unknown there: the landmark is skipped.
                if point is None:
                    continue
                if not (isinstance(point, (list, tuple)) and len(point) == 3
                        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in point)):
                    ok = False
        if not ok:
            raise _bad(path, f"{where}: la_targets[{j}] must be [name, [x, y, z], [tx, ty, tz]], got {entry!r}")
    return list(la)


def _load_map(man: Manifest, rel: str, k: float) -> tuple[np.ndarray, np.ndarray, RenderSpec]:
    """Normalised map (H, W) float32, mask (H, W) bool and spec of one map file, checked against the manifest."""
    path = man.root / rel
    dm = load_depthmap(path)  # raises InputError naming the file
    spec = dm.spec
    if spec.size != man.size:
        raise InputError(path, f"map size {spec.size} differs from the manifest's {man.size}")
    for name in ("mm_per_px", "z_near", "z_far"):
        a, b = getattr(spec, name), getattr(man, name)
        if not math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9):
            raise InputError(path, f"map {name} {a} differs from the manifest's {b}")
    if not dm.mask.any():
        raise InputError(path, "depth map is empty (no surface pixel)")
    return normalise(dm.height, spec, k), dm.mask, spec


def head_weight(man: Manifest, sample: Mapping[str, Any]) -> float:
    """The weight of a sample's source head (``heads.<name>.weight`` in the manifest; 1 when
    absent): a coarse or defective head counts less in training and in the thickness prior."""
    entry = man.heads.get(sample.get("source_head") or "", {})
    w = entry.get("weight", 1.0) if isinstance(entry, dict) else 1.0
    w = finite_number(w, man.path, f"heads.{sample.get('source_head')}.weight", _FORMAT_HINT)
    if not 0.0 <= w <= 1.0:
        raise _bad(man.path, f"heads.{sample.get('source_head')}.weight must be in [0, 1], got {w}")
    return w


def load_weight(man: Manifest, rel: str) -> np.ndarray:
    """A sample's per-pixel weight map ``(H, W)`` float32 in [0, 1] (``docs/dataset-format.md``)."""
    path = man.root / rel
    try:
        with np.load(path) as d:
            wmap = np.asarray(d["weight"], np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(path, f"cannot read the weight map (an .npz with a 'weight' array): {exc}") from None
    if wmap.shape != tuple(man.size):
        raise InputError(path, f"weight map size {wmap.shape} differs from the manifest's {tuple(man.size)}")
    if not np.isfinite(wmap).all() or wmap.min() < 0.0 or wmap.max() > 1.0:
        raise InputError(path, "weight map values must be finite and in [0, 1]")
    return wmap


def _centre(spec: RenderSpec) -> tuple[float, float]:
    return tuple(float(v) for v in getattr(spec, "centre", (0.0, 0.0)))


def load_arrays(
    dataset_dir: str | os.PathLike | Manifest,
    samples: Sequence[Mapping[str, Any] | str] | None = None,
    k: float = 4.0,
    size: int | tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """Load samples' maps and anthropological-loss targets as stacked arrays.

    Parameters
    ----------
    dataset_dir : path-like or Manifest
        The dataset folder (its manifest is read and validated) or an already loaded manifest.
    samples : sequence of dict or str, optional
        Samples (manifest entries, e.g. from `Manifest.select`) or their ids, in the order
        wanted; default every sample.
    k : float
        Depth exponent of `skull2face.geometry.depthmap.normalise` (4 in the paper).
    size : int or (int, int), optional
        Return the arrays at this resolution (`downsample_arrays`); it must divide the
        dataset's size. Default: the dataset's size.

    Returns
    -------
    dict of str to numpy.ndarray
        See the module docstring for the keys, shapes and dtypes. For a sample with a skull,
        target ``i`` is pixel ``spec.head_to_pixel(s_i + t_i n_i)`` with normalised height
        ``normalise(z of s_i + t_i n_i)``.

    Raises
    ------
    InputError
        Naming the manifest (invalid, unknown sample id) or the map file (missing, corrupt,
        empty, or with a size / pitch / depth range different from the manifest's).
    """
    man = dataset_dir if isinstance(dataset_dir, Manifest) else load_manifest(dataset_dir)
    if not k > 0:
        raise ValueError(f"k must be positive, got {k}")
    if samples is None:
        chosen = list(man.samples)
    else:
        chosen = []
        for s in samples:
            sid = s if isinstance(s, str) else s.get("id")
            try:
                chosen.append(man.by_id(sid))
            except KeyError:
                raise InputError(man.path, f"no sample with id {sid!r}") from None
    n = len(chosen)
    h, w = man.size
    spec = man.spec()

    names: list[str] = []
    for s in chosen:
        for entry in s["la_targets"]:
            if entry[0] not in names:
                names.append(entry[0])
    n_lm = len(names)
    col_of = {name: j for j, name in enumerate(names)}
    centre: tuple[float, float] | None = None

    out: dict[str, np.ndarray] = {
        "id": np.array([s["id"] for s in chosen], dtype=str),
        "kind": np.array([s["kind"] for s in chosen], dtype=str),
        "split": np.array([s["split"] for s in chosen], dtype=str),
        "source_head": np.array([s["source_head"] or "" for s in chosen], dtype=str),
        "real": np.array([s["real"] for s in chosen], dtype=bool),
        "has_skull": np.array(["skull" in _NEEDS[s["kind"]] for s in chosen], dtype=bool),
        "has_face": np.array(["face" in _NEEDS[s["kind"]] for s in chosen], dtype=bool),
        "skull": np.zeros((n, 1, h, w), np.float32),
        "skull_mask": np.zeros((n, 1, h, w), np.float32),
        "face": np.zeros((n, 1, h, w), np.float32),
        "face_mask": np.zeros((n, 1, h, w), np.float32),
        "fit": np.zeros((n, 1, h, w), np.float32),
        "fit_mask": np.zeros((n, 1, h, w), np.float32),
        "has_fit": np.array(["fit" in s["files"] for s in chosen], dtype=bool),
        "face_weight": np.ones((n, 1, h, w), np.float32),
        "head_weight": np.array([head_weight(man, s) for s in chosen], np.float32),
        "la_names": np.array(names, dtype=str),
        "la_px": np.zeros((n, n_lm, 2), np.float32),
        "la_height": np.zeros((n, n_lm), np.float32),
        "la_valid": np.zeros((n, n_lm), bool),
        "size": np.array([h, w], np.int64),
        "centre": np.zeros(2, np.float64),
        "mm_per_px": np.asarray(man.mm_per_px, np.float64),
        "k": np.asarray(float(k), np.float64),
        "z_near": np.asarray(man.z_near, np.float64),
        "z_far": np.asarray(man.z_far, np.float64),
    }
    for i, s in enumerate(chosen):
        la_spec = spec
        for part in _MAP_PARTS:
            if part in _NEEDS[s["kind"]] or (part == "fit" and "fit" in s["files"]):
                values, mask, map_spec = _load_map(man, s["files"][part], k)
                out[part][i, 0] = values
                out[f"{part}_mask"][i, 0] = mask
                # A pixel must mean the same head-frame (x, y) in every map, or the network
                # would learn a different position for every sample.
                if centre is None:
                    centre = _centre(map_spec)
                elif not np.allclose(_centre(map_spec), centre, atol=1e-6):
                    raise InputError(man.root / s["files"][part],
                                     f"map centre {_centre(map_spec)} differs from the other maps' {centre}")
                if part == "skull":
                    la_spec = map_spec  # landmark targets go on the skull's own pixel grid
        if "weight" in s["files"]:
            out["face_weight"][i, 0] = load_weight(man, s["files"]["weight"])
        out["face_weight"][i, 0] *= out["head_weight"][i]
        for name, _, target in s["la_targets"]:
            if target is None:
                continue
            t = np.asarray(target, np.float64)
            j = col_of[name]
            px = la_spec.head_to_pixel(t)
            out["la_px"][i, j] = px
            out["la_height"][i, j] = normalise(t[2:3], spec, k)[0]
            # normalise clips to [z_near, z_far]; a clipped target would pull the face to the
            # wrong height, so such a landmark takes no part instead.
            out["la_valid"][i, j] = bool(
                np.isfinite(t).all()
                and man.z_near <= t[2] <= man.z_far
                and 0 <= px[0] <= h - 1 and 0 <= px[1] <= w - 1
            )
    if centre is not None:
        out["centre"] = np.asarray(centre, np.float64)
    if size is not None:
        out = downsample_arrays(out, size)
    return out


__all__ = [
    "FORMAT",
    "KINDS",
    "MANIFEST",
    "Manifest",
    "PER_SAMPLE_KEYS",
    "SPLITS",
    "VERSION",
    "downsample_arrays",
    "downsample_map",
    "head_weight",
    "load_arrays",
    "load_manifest",
    "load_weight",
    "network_input",
    "subset",
]
