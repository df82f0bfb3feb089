"""Orthographic depth maps of a mesh seen from the front of the head frame.

A depth map stores, for every pixel, the head-frame z (mm, float32) of the first surface met by
a ray travelling along -z, i.e. the surface seen when looking at the face. Pixels whose ray
misses the mesh are NaN and ``False`` in the mask. Depth is always float32 millimetres, never
8-bit; the [0, 1] values a network sees come from `normalise` and go back through `denormalise`.

Pixel grid (see `RenderSpec`): the image is centred on the head-frame point ``centre``
(for head maps `HEAD_MAP_CENTRE`, 40 mm below nasion, so forehead to chin fit), row 0 is the top (+y up), and the left
image column is -x, the subject's right, as when facing the subject. Pixel ``(r, c)`` has its
centre at

    x = (c - (W - 1) / 2) * s + cx,    y = ((H - 1) / 2 - r) * s + cy,    s = mm_per_px.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from ..errors import InputError
from ..io.atomic import atomic_path, write_json
from . import codec
from .frame import apply, as_rigid, invert_rigid

# Default depth range in head-frame z. The origin is nasion, so +50 mm clears the nose tip
# (pronasale sits some 20..35 mm in front of nasion) and -150 mm reaches behind the ears
# (tragion ~90 mm behind nasion) without spending range on the back of the skull.
DEFAULT_Z_NEAR = -150.0
DEFAULT_Z_FAR = 50.0
# Head-frame (x, y) of the centre of face and skull maps (pass it as ``RenderSpec.centre``).
# Nasion is the origin; the face spans from the hairline (~+70 mm) to below the chin (menton
# ~-120 mm), so head maps are centred 40 mm below nasion: a 256 mm map then covers
# y = +88 .. -168 mm. A bare RenderSpec is centred on the origin.
HEAD_MAP_CENTRE = (0.0, -40.0)
# depth_to_mesh drops triangles spanning more than this many pixels' worth of depth: a slope
# of 5 (79 degrees from the view axis) is steeper than any facial or cranial surface seen from
# the front, so such triangles would only bridge occlusion edges (nose side, skull->background).
DEFAULT_MAX_JUMP_PX = 5.0

_SUFFIXES = (".npz", ".json", ".png")


@dataclass(eq=False)
class RenderSpec:
    """Everything needed to render, compare and invert a depth map.

    Parameters
    ----------
    size : (int, int)
        Image height H and width W in pixels.
    mm_per_px : float
        Pixel pitch s in mm (the same along x and y).
    frame : numpy.ndarray, shape (4, 4), float64
        Rigid input -> head transform (see `skull2face.geometry.frame`). Identity by default,
        i.e. the mesh is already in the head frame.
    z_near, z_far : float
        Head-frame z (mm) of the depth range used by `normalise`: ``z_near`` maps to 0 and
        ``z_far`` to 1; ``z_near < z_far``. They do not clip rendering: heights outside the
        range are stored as rendered and only clipped when normalised.
    centre : (float, float)
        Head-frame (x, y) in mm of the image centre; head maps use `HEAD_MAP_CENTRE`.
    source_sha256 : dict of str to str
        Optional provenance, e.g. ``{"mesh": "<sha256 of the input file>"}``.
    """

    size: tuple[int, int] = (256, 256)
    mm_per_px: float = 1.0
    frame: np.ndarray = field(default_factory=lambda: np.eye(4))
    z_near: float = DEFAULT_Z_NEAR
    z_far: float = DEFAULT_Z_FAR
    centre: tuple[float, float] = (0.0, 0.0)
    source_sha256: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        size = np.asarray(self.size).reshape(-1)
        if size.shape != (2,) or not np.issubdtype(size.dtype, np.integer) or size.min() < 1:
            raise ValueError(f"size must be two positive integers (H, W), got {self.size!r}")
        self.size = (int(size[0]), int(size[1]))
        self.mm_per_px = float(self.mm_per_px)
        if not (np.isfinite(self.mm_per_px) and self.mm_per_px > 0):
            raise ValueError(f"mm_per_px must be positive, got {self.mm_per_px}")
        self.frame = as_rigid(self.frame, "RenderSpec.frame")
        self.z_near, self.z_far = float(self.z_near), float(self.z_far)
        if not (np.isfinite(self.z_near) and np.isfinite(self.z_far) and self.z_near < self.z_far):
            raise ValueError(f"need finite z_near < z_far, got {self.z_near}, {self.z_far}")
        self.source_sha256 = {str(k): str(v) for k, v in dict(self.source_sha256).items()}
        centre = np.asarray(self.centre, dtype=np.float64).reshape(-1)
        if centre.shape != (2,) or not np.all(np.isfinite(centre)):
            raise ValueError(f"centre must be two finite numbers (x, y) in mm, got {self.centre!r}")
        self.centre = (float(centre[0]), float(centre[1]))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RenderSpec):
            return NotImplemented
        return self.to_json() == other.to_json()

    @property
    def inverse(self) -> np.ndarray:
        """Head -> input transform, shape (4, 4) float64."""
        return invert_rigid(self.frame)

    def xy_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Head-frame x and y (mm) of every pixel centre.

        Returns
        -------
        x, y : numpy.ndarray, shape (H, W), float64
        """
        h, w = self.size
        s = self.mm_per_px
        x = (np.arange(w) - (w - 1) / 2.0) * s + self.centre[0]
        y = ((h - 1) / 2.0 - np.arange(h)) * s + self.centre[1]
        return np.broadcast_to(x, (h, w)), np.broadcast_to(y[:, None], (h, w))

    def head_to_pixel(self, points_head: Any) -> np.ndarray:
        """Fractional (row, col) of head-frame points, e.g. landmarks.

        Parameters
        ----------
        points_head : array_like, shape (..., 3) or (..., 2), mm
            Only x and y are used.

        Returns
        -------
        numpy.ndarray, shape (..., 2), float64
            Row and column; integers are pixel centres.
        """
        p = np.asarray(points_head, dtype=np.float64)
        h, w = self.size
        col = (p[..., 0] - self.centre[0]) / self.mm_per_px + (w - 1) / 2.0
        row = (h - 1) / 2.0 - (p[..., 1] - self.centre[1]) / self.mm_per_px
        return np.stack([row, col], axis=-1)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that `from_json` reads back exactly."""
        return {
            "format": "skull2face.render_spec",
            "version": 1,
            "size": list(self.size),
            "mm_per_px": self.mm_per_px,
            "frame": self.frame.tolist(),
            "z_near": self.z_near,
            "z_far": self.z_far,
            "centre": list(self.centre),
            "source_sha256": dict(self.source_sha256),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RenderSpec:
        """Rebuild from `to_json` output. Raises ValueError (or KeyError) if malformed."""
        if data.get("format") != "skull2face.render_spec":
            raise ValueError(f"not a render spec (format {data.get('format')!r})")
        return cls(size=tuple(data["size"]), mm_per_px=data["mm_per_px"],
                   frame=np.asarray(data["frame"], dtype=np.float64),
                   z_near=data["z_near"], z_far=data["z_far"], centre=tuple(data.get("centre", (0.0, 0.0))),
                   source_sha256=data.get("source_sha256") or {})


@dataclass(eq=False)
class DepthMap:
    """A rendered depth map.

    Parameters
    ----------
    height : numpy.ndarray, shape (H, W), float32, mm
        Head-frame z of the first surface hit by a ray cast along -z; NaN where none.
    mask : numpy.ndarray, shape (H, W), bool
        True where the ray hit; equal to ``isfinite(height)``.
    spec : RenderSpec
    """

    height: np.ndarray
    mask: np.ndarray
    spec: RenderSpec

    def __post_init__(self) -> None:
        self.height = np.asarray(self.height, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.height.shape != self.spec.size or self.mask.shape != self.spec.size:
            raise ValueError(f"height {self.height.shape} and mask {self.mask.shape} must both have "
                             f"the spec's size {self.spec.size}")
        if not np.array_equal(self.mask, np.isfinite(self.height)):
            raise ValueError("mask must be True exactly where height is finite")


def _intersector(mesh: trimesh.Trimesh):
    # trimesh caches the intersector (and so Embree's BVH) on the mesh until its geometry
    # changes, so rendering one mesh under several specs builds the BVH once.
    return mesh.ray


def render(mesh: trimesh.Trimesh, spec: RenderSpec) -> DepthMap:
    """Orthographic depth map of ``mesh`` seen from +z of the head frame.

    One ray per pixel centre starts above the mesh (above both ``spec.z_far`` and the mesh's
    highest point, so nothing is clipped) and travels along -z; the height is the head-frame z
    of its first hit. Rays are cast in the mesh's own coordinates, so the mesh is neither copied
    nor transformed and its cached Embree BVH is reused across specs.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Vertices in input coordinates, mm. Back faces count as hits (no culling).
    spec : RenderSpec

    Returns
    -------
    DepthMap

    Notes
    -----
    Uses Embree (``embreex``) when ``trimesh.ray.has_embree``; otherwise trimesh's pure-numpy
    intersector, which gives the same result far more slowly.
    """
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError("render needs a non-empty trimesh.Trimesh")
    h, w = spec.size
    rot = spec.frame[:3, :3]
    z_axis = rot[2]  # head +z in input coordinates
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    head_xyz = apply(spec.frame, verts)

    x, y = spec.xy_grid()
    # Only pixels inside the mesh's footprint can hit; skipping the rest is free speed.
    lo, hi = head_xyz[:, :2].min(axis=0), head_xyz[:, :2].max(axis=0)
    pad = 1e-6 * max(float(np.ptp(head_xyz)), 1.0)
    cand = ((x >= lo[0] - pad) & (x <= hi[0] + pad) & (y >= lo[1] - pad) & (y <= hi[1] + pad)).ravel()
    height = np.full(h * w, np.nan, dtype=np.float32)
    if not cand.any():
        return DepthMap(height.reshape(h, w), np.zeros((h, w), bool), spec)

    # Start 1 mm (plus a relative margin) above everything so the first hit is the outer surface.
    z_start = max(spec.z_far, float(head_xyz[:, 2].max())) + 1.0 + 1e-3 * float(np.ptp(head_xyz[:, 2]))
    n_rays = int(cand.sum())
    origins_head = np.empty((n_rays, 3))
    origins_head[:, 0] = x.ravel()[cand]
    origins_head[:, 1] = y.ravel()[cand]
    origins_head[:, 2] = z_start
    origins = apply(spec.inverse, origins_head)
    direction = -z_axis
    directions = np.broadcast_to(direction, origins.shape)

    # intersects_first + our own ray/plane distance is ~1.8x faster than
    # intersects_location(multiple_hits=False) (measured 14 vs 22 ms at 256^2 and 40 vs 73 ms
    # at 512^2 on a 330k-triangle sphere) and equally exact: both take the triangle from Embree
    # (float32) and then intersect the ray with that triangle's plane in float64, but
    # intersects_location also builds general (n, 3) results and bookkeeping we don't need.
    # benchmarks/render_speed.py re-measures both.
    tri = np.asarray(_intersector(mesh).intersects_first(origins, directions), dtype=np.int64)
    hit = tri >= 0
    if hit.any():
        tri_h = tri[hit]
        faces = np.asarray(mesh.faces)[tri_h]
        a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
        normal = np.cross(b - a, c - a)
        o = origins[hit]
        denom = np.einsum("ij,j->i", normal, direction)  # off BLAS, see frame.apply
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.einsum("ij,ij->i", normal, a - o) / denom
        z = z_start - t  # the ray is a unit vector along -z, and rigid maps keep lengths
        # The true hit lies inside the triangle, so its z is within the triangle's z range;
        # clipping there also tames near-grazing hits; for exactly grazing (denom = 0) or
        # zero-area triangles the ray meets the triangle first at (at most) its top.
        tz = head_xyz[faces, 2]
        zmin, zmax = tz.min(axis=1), tz.max(axis=1)
        z = np.where(np.isfinite(z), np.clip(z, zmin, zmax), zmax)
        idx = np.flatnonzero(cand)[hit]
        height[idx] = z.astype(np.float32)
    height = height.reshape(h, w)
    return DepthMap(height, np.isfinite(height), spec)


def normalise(height: Any, spec: RenderSpec, k: float = 4.0) -> np.ndarray:
    """Map heights (mm) to network values in [0, 1]: ``clip((z - z_near) / (z_far - z_near)) ** k``.

    Raising to the power ``k`` (4 in Knyaz et al. 2020) stretches the front of the face, where
    the facial detail is, at the expense of the back. `skull2face.geometry.codec.normalise` (float64).

    Parameters
    ----------
    height : array_like, shape (H, W), float, mm
        Head-frame z; NaN marks background.
    spec : RenderSpec
        Supplies ``z_near`` and ``z_far``.
    k : float
        Exponent, > 0.

    Returns
    -------
    numpy.ndarray, shape (H, W), float32
        Values in [0, 1]; 0 where ``height`` is NaN.
    """
    if not k > 0:
        raise ValueError(f"k must be positive, got {k}")
    z = np.asarray(height, dtype=np.float64)
    u = codec.normalise(z, spec.z_near, spec.z_far, k)
    return np.where(np.isfinite(z), u, 0.0).astype(np.float32)


def denormalise(values: Any, spec: RenderSpec, k: float = 4.0, mask: Any = None) -> np.ndarray:
    """Exact inverse of `normalise` for heights within ``[z_near, z_far]`` (`codec.denormalise`, float64).

    Parameters
    ----------
    values : array_like, shape (H, W), float in [0, 1]
        Network values; clipped to [0, 1] first.
    spec : RenderSpec
    k : float
        The exponent used by `normalise`.
    mask : array_like of bool, shape (H, W), optional
        Where the surface exists; NaN is returned elsewhere. Without it, every pixel gets a
        height (background becomes ``z_near``).

    Returns
    -------
    numpy.ndarray, shape (H, W), float32, mm
        ``z_near + values ** (1 / k) * (z_far - z_near)``.
    """
    if not k > 0:
        raise ValueError(f"k must be positive, got {k}")
    z = codec.denormalise(np.asarray(values, dtype=np.float64), spec.z_near, spec.z_far, k)
    if mask is not None:
        z = np.where(np.asarray(mask, dtype=bool), z, np.nan)
    return z.astype(np.float32)


def depth_to_mesh(dm: DepthMap, max_jump_mm: float | None = None) -> trimesh.Trimesh:
    """Triangulate a depth map back into a surface in the input's coordinates.

    One vertex per valid pixel (at its centre and height; isolated pixels stay as unreferenced
    vertices so vertex ``i`` is the ``i``-th valid pixel in row-major order). Every 2x2 block of
    valid pixels gives two triangles split along the diagonal with the smaller depth change
    (the shorter one in 3D); a block with three valid pixels gives the one triangle they form,
    which keeps the rim closer to the silhouette. Triangles whose depth range exceeds
    ``max_jump_mm`` are dropped so that no surface bridges an occlusion edge. Faces are wound so
    that their normals point toward +z of the head frame (toward the viewer).

    Parameters
    ----------
    dm : DepthMap
    max_jump_mm : float, optional
        Largest depth range (mm) allowed within one triangle; default
        ``DEFAULT_MAX_JUMP_PX * mm_per_px`` (5 pixels' worth).

    Returns
    -------
    trimesh.Trimesh
        Vertices ``(n_valid, 3)`` float64 mm in input coordinates (``spec.frame`` undone),
        faces ``(m, 3)`` int64. Not processed (no merging or reordering).
    """
    spec = dm.spec
    if max_jump_mm is None:
        max_jump_mm = DEFAULT_MAX_JUMP_PX * spec.mm_per_px
    h, w = spec.size
    valid = dm.mask
    index = np.full((h, w), -1, dtype=np.int64)
    index[valid] = np.arange(int(valid.sum()))
    x, y = spec.xy_grid()
    z = dm.height.astype(np.float64)
    verts_head = np.column_stack([x[valid], y[valid], z[valid]])

    # Corners of every 2x2 block, flattened. In head xy, TL=(0,0), TR=(1,0), BL=(0,-1),
    # BR=(1,-1): the cycle TL->BL->BR->TR is counter-clockwise seen from +z, and any three of
    # its corners taken in cycle order are too, so all triangles below face +z.
    tl, tr = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    bl, br = index[1:, :-1].ravel(), index[1:, 1:].ravel()
    ztl, ztr = z[:-1, :-1].ravel(), z[:-1, 1:].ravel()
    zbl, zbr = z[1:, :-1].ravel(), z[1:, 1:].ravel()
    ok = np.stack([tl, bl, br, tr]) >= 0
    n_ok = ok.sum(axis=0)

    full = n_ok == 4
    # NaN-free within full blocks; ties go to the TL-BR diagonal for a consistent flat grid.
    main = full & (np.abs(ztl - zbr) <= np.abs(ztr - zbl))
    anti = full & ~main
    tris = [
        np.column_stack([tl, bl, br])[main], np.column_stack([tl, br, tr])[main],
        np.column_stack([tl, bl, tr])[anti], np.column_stack([bl, br, tr])[anti],
    ]
    three = n_ok == 3
    tris += [
        np.column_stack([bl, br, tr])[three & ~ok[0]],
        np.column_stack([tl, br, tr])[three & ~ok[1]],
        np.column_stack([tl, bl, tr])[three & ~ok[2]],
        np.column_stack([tl, bl, br])[three & ~ok[3]],
    ]
    faces = np.concatenate(tris).astype(np.int64)
    if len(faces):
        fz = verts_head[faces, 2]
        faces = faces[(fz.max(axis=1) - fz.min(axis=1)) <= max_jump_mm]
    verts = apply(spec.inverse, verts_head)
    return trimesh.Trimesh(vertices=verts, faces=faces.reshape(-1, 3), process=False)


def _paths(path: str | os.PathLike) -> dict[str, Path]:
    p = Path(path)
    base = p.with_suffix("") if p.suffix.lower() in _SUFFIXES else p
    return {s: base.with_name(base.name + s) for s in _SUFFIXES}


def _write_preview(dm: DepthMap, target: Path) -> None:
    """Grey-level PNG of the map: white at its nearest point (highest z), dark grey at its
    farthest, transparent where there is no surface; up is +y, left is the subject's right
    (-x), each pixel enlarged to at least 2 x 2 so that a 256^2 map reads at 512^2. The
    range (mm) and the pixel size are in the PNG's text chunks. Pillow only: a matplotlib
    figure with axes and colour bar took ~0.25 s a map, twice per ``predict``."""
    from PIL import Image, PngImagePlugin

    h, w = dm.spec.size
    height = np.asarray(dm.height, dtype=np.float64)
    lo, hi = (float(np.nanmin(height)), float(np.nanmax(height))) if dm.mask.any() else (dm.spec.z_near, dm.spec.z_far)
    grey = np.zeros((h, w), dtype=np.uint8)
    if dm.mask.any():
        grey[dm.mask] = np.round(48 + 207 * (height[dm.mask] - lo) / max(hi - lo, 1e-9)).astype(np.uint8)
    alpha = np.where(dm.mask, 255, 0).astype(np.uint8)
    img = Image.fromarray(np.dstack([grey, alpha]), mode="LA")
    scale = max(1, int(np.ceil(512 / max(h, w))))
    if scale > 1:
        img = img.resize((w * scale, h * scale), Image.NEAREST)
    info = PngImagePlugin.PngInfo()
    info.add_text("height_mm", f"{lo:.2f} (dark) to {hi:.2f} (white), head-frame z")
    info.add_text("mm_per_px", f"{dm.spec.mm_per_px:g} (before x{scale} enlargement)")
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        img.save(f, format="PNG", pnginfo=info)


def save_depthmap(dm: DepthMap, path: str | os.PathLike, preview: bool = True) -> dict[str, Path]:
    """Write ``<path>.npz`` (height float32 mm, mask), ``<path>.json`` (spec) and ``<path>.png``.

    Each file is written atomically. A trailing ``.npz``, ``.json`` or ``.png`` on ``path`` is
    taken as the base name's suffix and replaced.

    Parameters
    ----------
    dm : DepthMap
    path : path-like
        Base path.
    preview : bool
        Also write the PNG preview (grey levels over the map's height range, background transparent).

    Returns
    -------
    dict of str to pathlib.Path
        Keys ``".npz"``, ``".json"`` and (with ``preview``) ``".png"``.
    """
    paths = _paths(path)
    with atomic_path(paths[".npz"]) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, height=dm.height.astype(np.float32), mask=dm.mask)
    write_json(paths[".json"], dm.spec.to_json())
    if preview:
        _write_preview(dm, paths[".png"])
    else:
        del paths[".png"]
    return paths


def load_depthmap(path: str | os.PathLike) -> DepthMap:
    """Read a depth map written by `save_depthmap` (``.npz`` + ``.json``; the PNG is not needed).

    Raises
    ------
    InputError
        Naming the file that is missing, unreadable, or inconsistent with the spec.
    """
    paths = _paths(path)
    npz, js = paths[".npz"], paths[".json"]
    if not npz.is_file():
        raise InputError(npz, "depth map file not found")
    if not js.is_file():
        raise InputError(js, f"render spec not found; it must sit beside {npz.name}")
    try:
        spec = RenderSpec.from_json(json.loads(js.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(js, f"cannot read render spec: {exc}") from None
    try:
        with np.load(npz, allow_pickle=False) as data:
            height, mask = data["height"], data["mask"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(npz, f"cannot read depth map (needs arrays 'height' and 'mask'): {exc}") from None
    if height.dtype != np.float32 or mask.dtype != bool:
        raise InputError(npz, f"expected float32 height and bool mask, got {height.dtype} and {mask.dtype}")
    try:
        return DepthMap(height, mask, spec)
    except ValueError as exc:
        raise InputError(npz, str(exc)) from None


__all__ = [
    "DEFAULT_MAX_JUMP_PX",
    "HEAD_MAP_CENTRE",
    "DEFAULT_Z_FAR",
    "DEFAULT_Z_NEAR",
    "DepthMap",
    "RenderSpec",
    "denormalise",
    "depth_to_mesh",
    "load_depthmap",
    "normalise",
    "render",
    "save_depthmap",
]
