"""Standard cranial and facial measurements of a skull, from its landmarks and its surface.

The measurements are those of the osteometric standards (Buikstra & Ubelaker 1994, *Standards
for data collection from human skeletal remains*, after Martin & Saller 1957 and Howells 1973),
restricted to what the skull's landmarks allow (the paper's Table 1: N, G, Pr, Ns, Gn, Pog,
Zy, Go, Fmt, Da). Two need points that are not landmarks but extremes of the vault, found on the
surface in the head frame (+x the subject's left, +y up, +z forward; the mid-sagittal plane is
x = 0):

* **opisthocranion** (op): the point of the mid-sagittal vault farthest from glabella (the
  definition of maximum cranial length, g-op);
* **euryon** (eu, left and right): the ends of the greatest breadth of the vault perpendicular
  to the mid-sagittal plane, taken above the level of nasion and behind the orbits (so not on
  the zygomatic arches or the mastoid region).

Each measurement says which points it used; one whose points are missing is reported missing
with the reason, never estimated. Millimetres; input coordinates for the points. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..geometry.frame import apply, invert_rigid
from .landmark_set import points_of

MIDLINE_MM = 2.0
"""Half-width of the mid-sagittal slab in which opisthocranion is sought, mm."""
VAULT_ABOVE_NASION_MM = 0.0
"""Euryon is sought only above this head-frame height (nasion is y = 0): the maximum breadth
lies on the parietals or the squamous temporals, well above the zygomatic arches (about 20-30 mm
below nasion's level; Howells 1973: XCB 'above the supramastoid crests')."""
VAULT_BEHIND_NASION_MM = 40.0
"""Euryon is sought only this far behind nasion (head-frame z < -this), behind the orbits and
the zygomatic processes of the frontal bone."""
CELL_MM = 2.0
"""Side of the (height, depth) cells in which the vault's breadth is measured, mm."""


@dataclass(frozen=True)
class Definition:
    """One standard measurement between two points.

    Attributes
    ----------
    key : str
        Short name (``"ZYB"``; Howells' abbreviation where he has one).
    name : str
        The standard's name.
    points : (str, str)
        The two points (landmark names, or ``op``, ``eu_L``, ``eu_R``).
    source : str
        Where its definition comes from.
    """

    key: str
    name: str
    points: tuple[str, str]
    source: str


BU = "Buikstra & Ubelaker 1994"
DEFINITIONS = (
    Definition("GOL", "maximum cranial length (glabella-opisthocranion)", ("G", "op"), f"{BU}; Howells 1973 GOL"),
    Definition("XCB", "maximum cranial breadth (euryon-euryon)", ("eu_L", "eu_R"), f"{BU}; Howells 1973 XCB"),
    Definition("ZYB", "bizygomatic breadth (zygion-zygion)", ("Zy_L", "Zy_R"), f"{BU}; Howells 1973 ZYB"),
    Definition("NPH", "upper facial height (nasion-prosthion)", ("N", "Pr"), f"{BU}; Howells 1973 NPH"),
    Definition("NLH", "nasal height (nasion-nasospinale)", ("N", "Ns"), f"{BU}; Martin 55"),
    Definition("UFBR", "upper facial breadth (frontomalare temporale, left-right)", ("Fmt_L", "Fmt_R"), BU),
    Definition("DKB", "interorbital breadth (dacryon-dacryon)", ("Da_L", "Da_R"), f"{BU}; Howells 1973 DKB"),
    Definition("NGH", "total facial height (nasion-gnathion)", ("N", "Gn"), "Martin 47"),
    Definition("GOGO", "bigonial breadth (gonion-gonion)", ("Go_L", "Go_R"), f"{BU}; Martin 66"),
)
"""The measurements `measure_skull` reports, in this order."""


def vault_points(vertices: np.ndarray, frame: np.ndarray, glabella: np.ndarray | None) -> tuple[dict, dict]:
    """Opisthocranion and the two eurya found on the surface (module docstring).

    Parameters
    ----------
    vertices : numpy.ndarray, shape (n, 3), mm
        The skull's vertices, input coordinates.
    frame : numpy.ndarray, shape (4, 4)
        Input -> head frame.
    glabella : numpy.ndarray (3,) or None
        G, input coordinates (opisthocranion needs it).

    Returns
    -------
    points : dict of str to numpy.ndarray (3,)
        ``op``, ``eu_L``, ``eu_R`` found (input coordinates).
    missing : dict of str to str
        Why a point was not found.
    """
    head = apply(frame, np.asarray(vertices, np.float64))
    inv = invert_rigid(np.asarray(frame, np.float64))
    found, missing = {}, {}
    if glabella is None:
        missing["op"] = "no glabella"
    else:
        g = apply(frame, np.asarray(glabella, np.float64)[None])[0]
        mid = np.abs(head[:, 0]) <= MIDLINE_MM
        behind = mid & (head[:, 2] < g[2] - 100.0)  # the back of the vault, not the face
        if not behind.any():
            missing["op"] = "the skull has no vault behind glabella on the mid-sagittal plane (an incomplete vault?)"
        else:
            d = np.linalg.norm(head[mid] - g, axis=1)
            found["op"] = apply(inv, head[mid][int(np.argmax(d))][None])[0]
    vault = (head[:, 1] > VAULT_ABOVE_NASION_MM) & (head[:, 2] < -VAULT_BEHIND_NASION_MM)
    if vault.sum() < 100:
        missing["eu_L"] = missing["eu_R"] = "the skull has no vault above nasion's level and behind the orbits"
        return found, missing
    v = head[vault]
    cells = np.floor(v[:, 1:] / CELL_MM).astype(np.int64)
    _, cell = np.unique(cells, axis=0, return_inverse=True)
    cell = cell.ravel()
    n = int(cell.max()) + 1
    right = np.full(n, np.inf)
    left = np.full(n, -np.inf)
    np.minimum.at(right, cell, v[:, 0])
    np.maximum.at(left, cell, v[:, 0])
    width = np.where((left > 0) & (right < 0), left - right, -np.inf)
    best = int(np.argmax(width))
    if not np.isfinite(width[best]):
        missing["eu_L"] = missing["eu_R"] = "no part of the vault spans both sides (one side missing?)"
        return found, missing
    sel = np.flatnonzero(cell == best)
    found["eu_L"] = apply(inv, v[sel[np.argmax(v[sel, 0])]][None])[0]
    found["eu_R"] = apply(inv, v[sel[np.argmin(v[sel, 0])]][None])[0]
    return found, missing


def measure_skull(vertices: Any, landmarks: Any, frame: Any) -> list[dict]:
    """The standard measurements a skull's landmarks and surface allow (`DEFINITIONS`).

    Parameters
    ----------
    vertices : array_like, shape (n, 3), mm
        The skull's vertices, input coordinates.
    landmarks : mapping of str to array_like (3,), or LandmarkSet
        Skull landmarks, input coordinates.
    frame : array_like, shape (4, 4)
        Input -> head frame (`skull2face.geometry.frame.head_frame`).

    Returns
    -------
    list of dict
        Per measurement: ``key``, ``name``, ``source``, ``mm`` (None when missing), ``points``
        (name -> input coordinates, mm, of the two points used), ``missing`` (why, or None).
    """
    pts = {k: np.asarray(v, np.float64) for k, v in points_of(landmarks).items() if np.all(np.isfinite(v))}
    extra, why = vault_points(np.asarray(vertices, np.float64), np.asarray(frame, np.float64), pts.get("G"))
    pts.update(extra)
    out = []
    for d in DEFINITIONS:
        a, b = d.points
        absent = [p for p in (a, b) if p not in pts]
        row = {"key": d.key, "name": d.name, "source": d.source, "mm": None, "points": None, "missing": None}
        if absent:
            row["missing"] = "; ".join(f"{p}: {why.get(p, 'not located on this skull')}" for p in absent)
        else:
            row["mm"] = round(float(np.linalg.norm(pts[a] - pts[b])), 1)
            row["points"] = {a: [round(float(c), 2) for c in pts[a]], b: [round(float(c), 2) for c in pts[b]]}
        out.append(row)
    return out


def table(rows: list[dict]) -> str:
    """The measurements as a plain-text table."""
    lines = [f"{'key':<5} {'mm':>7}  measurement (points; source)"]
    for r in rows:
        value = f"{r['mm']:7.1f}" if r["mm"] is not None else f"{'-':>7}"
        tail = f"missing: {r['missing']}" if r["missing"] else f"{' - '.join(r['points'])}; {r['source']}"
        lines.append(f"{r['key']:<5} {value}  {r['name']} ({tail})")
    return "\n".join(lines)


def as_csv(rows: list[dict]) -> str:
    """The measurements as CSV text: key, name, mm, points, source, missing."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", "name", "mm", "points", "source", "missing"])
    for r in rows:
        w.writerow([r["key"], r["name"], "" if r["mm"] is None else f"{r['mm']:.1f}",
                    "-".join(r["points"]) if r["points"] else "", r["source"], r["missing"] or ""])
    return buf.getvalue()


__all__ = ["CELL_MM", "DEFINITIONS", "Definition", "MIDLINE_MM", "VAULT_ABOVE_NASION_MM", "VAULT_BEHIND_NASION_MM",
           "as_csv", "measure_skull", "table", "vault_points"]
