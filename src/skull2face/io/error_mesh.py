"""The error mesh: the truth skin with per-vertex errors, as a binary PLY.

`skull2face.stages.evaluate` writes it (``error_on_truth.ply``); MeshLab, CloudCompare and
ParaView show its extra vertex properties as scalar fields. Millimetres throughout.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import trimesh

from ..errors import InputError
from .atomic import atomic_path

_PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("error_mm", "<f4"),
                        ("signed_error_mm", "<f4"), ("region", "u1")])
_PLY_FACE = np.dtype([("n", "u1"), ("v", "<i4", (3,))])


def write_error_ply(mesh: trimesh.Trimesh, error_mm: np.ndarray, signed_mm: np.ndarray,
                    labels: np.ndarray, path: str | os.PathLike, *, region_names: Sequence[str]) -> Path:
    """Write the truth mesh with per-vertex errors as a binary PLY, atomically.

    Vertex properties: ``x y z`` (float32, mm), ``error_mm`` (float32, distance to the
    prediction), ``signed_error_mm`` (float32, + where the prediction is outside the truth) and
    ``region`` (uint8 label: 0 outside, 1.. per ``region_names``). MeshLab, CloudCompare and
    ParaView show the extra properties as scalar fields.

    Parameters
    ----------
    mesh : trimesh.Trimesh
    error_mm, signed_mm : numpy.ndarray, shape (n_vertices,), mm
    labels : numpy.ndarray, shape (n_vertices,), int
    path : path-like
    region_names : sequence of str
        Name of each label from 1 on (`skull2face.evaluation.region.SUBREGIONS`), written
        into the header.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    v = np.asarray(mesh.vertices, dtype=np.float64)
    vert = np.empty(len(v), dtype=_PLY_VERTEX)
    vert["x"], vert["y"], vert["z"] = v[:, 0], v[:, 1], v[:, 2]
    vert["error_mm"], vert["signed_error_mm"], vert["region"] = error_mm, signed_mm, labels
    return _write_ply(path, vert, mesh.faces, [
        "skull2face evaluate: truth skin, mm; error_mm = distance to the predicted surface",
        "signed_error_mm > 0 where the prediction lies outside the truth; region 0 = not scored, "
        + ", ".join(f"{k + 1} = {n}" for k, n in enumerate(region_names))])


_PLY_TYPES = {"<f4": "float", "u1": "uchar"}


def _write_ply(path: str | os.PathLike, vert: np.ndarray, faces: np.ndarray, comments: Sequence[str]) -> Path:
    """A binary little-endian PLY of a structured vertex array (x, y, z first) and triangles,
    written atomically."""
    f = np.asarray(faces, dtype=np.int64)
    face = np.empty(len(f), dtype=_PLY_FACE)
    face["n"], face["v"] = 3, f
    props = [f"property {_PLY_TYPES[vert.dtype[k].str.replace('|', '')]} {k}" for k in vert.dtype.names]
    header = "\n".join(["ply", "format binary_little_endian 1.0"] + [f"comment {c}" for c in comments]
                       + [f"element vertex {len(vert)}"] + props
                       + [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header", ""])
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(vert.tobytes())
        fh.write(face.tobytes())
    return path


def write_scalar_ply(mesh: trimesh.Trimesh, scalars: Mapping[str, np.ndarray], path: str | os.PathLike,
                     comments: Sequence[str] = ()) -> Path:
    """Write a mesh with float per-vertex scalars as a binary PLY, atomically (MeshLab,
    CloudCompare and ParaView show them as scalar fields); `read_scalar_ply` reads it back.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Vertices in mm.
    scalars : mapping of str to numpy.ndarray, shape (n_vertices,)
        Property name (letters, digits, ``_``) -> values (stored as float32).
    path : path-like
    comments : sequence of str
        Header comment lines (what the scalars mean, their units).

    Returns
    -------
    pathlib.Path
    """
    v = np.asarray(mesh.vertices, dtype=np.float64)
    names = list(scalars)
    vert = np.empty(len(v), dtype=np.dtype([(k, "<f4") for k in ("x", "y", "z", *names)]))
    vert["x"], vert["y"], vert["z"] = v[:, 0], v[:, 1], v[:, 2]
    for k in names:
        vert[k] = np.asarray(scalars[k], dtype=np.float32).reshape(-1)
    return _write_ply(path, vert, mesh.faces, comments)


def read_scalar_ply(path: str | os.PathLike) -> tuple[trimesh.Trimesh, dict[str, np.ndarray]]:
    """Read a PLY written by `write_scalar_ply`: the mesh (float64 mm vertices, in file order)
    and its scalars (float64); `InputError` naming the file when it is not one."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise InputError(path, "not a PLY file written by skull2face")
    head = data[:end].decode("ascii", errors="replace").splitlines()
    counts = {ln.split()[1]: int(ln.split()[2]) for ln in head if ln.startswith("element ")}
    props = [ln.split() for ln in head if ln.startswith("property float ")]
    if "vertex" not in counts or "face" not in counts or [p[2] for p in props[:3]] != ["x", "y", "z"]:
        raise InputError(path, "not a PLY file of float vertex scalars written by skull2face")
    dtype = np.dtype([(p[2], "<f4") for p in props])
    body = memoryview(data)[end + len(b"end_header\n"):]
    vert = np.frombuffer(body, dtype=dtype, count=counts["vertex"])
    face = np.frombuffer(body, dtype=_PLY_FACE, count=counts["face"], offset=counts["vertex"] * dtype.itemsize)
    mesh = trimesh.Trimesh(np.stack([vert["x"], vert["y"], vert["z"]], axis=1).astype(np.float64),
                           face["v"].astype(np.int64), process=False)
    return mesh, {p[2]: vert[p[2]].astype(np.float64) for p in props[3:]}


def read_error_ply(path: str | os.PathLike) -> tuple[trimesh.Trimesh, dict[str, np.ndarray]]:
    """Read a PLY written by `write_error_ply`.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    mesh : trimesh.Trimesh
        Vertices float64 mm (from float32), faces int64, in file order (not merged).
    scalars : dict of str to numpy.ndarray, shape (n_vertices,)
        ``error_mm``, ``signed_error_mm`` (float64) and ``region`` (int8).
    """
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise InputError(path, "not a PLY file written by skull2face evaluate")
    head = data[:end].decode("ascii").splitlines()
    counts = {ln.split()[1]: int(ln.split()[2]) for ln in head if ln.startswith("element ")}
    if "property float error_mm" not in head or "vertex" not in counts or "face" not in counts:
        raise InputError(path, "PLY has no error_mm vertex property")
    body = memoryview(data)[end + len(b"end_header\n"):]
    nv, nf = counts["vertex"], counts["face"]
    vert = np.frombuffer(body, dtype=_PLY_VERTEX, count=nv)
    face = np.frombuffer(body, dtype=_PLY_FACE, count=nf, offset=nv * _PLY_VERTEX.itemsize)
    mesh = trimesh.Trimesh(np.stack([vert["x"], vert["y"], vert["z"]], axis=1).astype(np.float64),
                           face["v"].astype(np.int64), process=False)
    return mesh, {"error_mm": vert["error_mm"].astype(np.float64),
                  "signed_error_mm": vert["signed_error_mm"].astype(np.float64),
                  "region": vert["region"].astype(np.int8)}

