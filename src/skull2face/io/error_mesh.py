"""The error mesh: the truth skin with per-vertex errors, as a binary PLY.

`skull2face.stages.evaluate` writes it (``error_on_truth.ply``); MeshLab, CloudCompare and
ParaView show its extra vertex properties as scalar fields. Millimetres throughout.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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
    f = np.asarray(mesh.faces, dtype=np.int64)
    vert = np.empty(len(v), dtype=_PLY_VERTEX)
    vert["x"], vert["y"], vert["z"] = v[:, 0], v[:, 1], v[:, 2]
    vert["error_mm"], vert["signed_error_mm"], vert["region"] = error_mm, signed_mm, labels
    face = np.empty(len(f), dtype=_PLY_FACE)
    face["n"], face["v"] = 3, f
    header = "\n".join([
        "ply", "format binary_little_endian 1.0",
        "comment skull2face evaluate: truth skin, mm; error_mm = distance to the predicted surface",
        "comment signed_error_mm > 0 where the prediction lies outside the truth; region 0 = not scored, "
        + ", ".join(f"{k + 1} = {n}" for k, n in enumerate(region_names)),
        f"element vertex {len(v)}", "property float x", "property float y", "property float z",
        "property float error_mm", "property float signed_error_mm", "property uchar region",
        f"element face {len(f)}", "property list uchar int vertex_indices", "end_header", ""])
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(vert.tobytes())
        fh.write(face.tobytes())
    return path


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

