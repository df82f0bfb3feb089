"""Landmark files: read the formats people place landmarks in, write our own and 3D Slicer's.

Read: canonical JSON (``.json``, written by `write_landmarks`), 3D Slicer markups
(``.mrk.json``) and fiducial lists (``.fcsv``), MeshLab picked points (``.pp``), and plain
``name,x,y,z`` tables (``.csv``, ``.txt``). Every label goes through
`skull2face.anatomy.names.resolve_name`, so "Nasion", "zygion_l" or "g’" all work.

Coordinates are millimetres in LPS (x to the subject's left, y to posterior, z up), the frame
of DICOM, ITK and our meshes. Files that say they are RAS (older Slicer) are converted on
reading by negating x and y. MeshLab and CSV files carry no frame: they are taken to be in
the frame of the mesh they were picked on, which for skull2face is LPS.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..anatomy import names as lm_names
from ..anatomy.landmark_set import RAS_FLIP as _RAS_FLIP
from ..anatomy.landmark_set import LandmarkSet
from ..errors import InputError
from .atomic import write_json

FORMAT = "skull2face-landmarks"
VERSION = 1
SUFFIXES = (".json", ".mrk.json", ".fcsv", ".pp", ".csv", ".txt")
_SLICER_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/"
                  "Markups/Resources/Schema/markups-schema-v1.0.3.json#")


# --- reading ---------------------------------------------------------------------------------

@dataclass
class _Raw:
    """A point as read from a file, before its label is resolved."""

    label: str
    xyz: list
    meta: dict = field(default_factory=dict)


def read_landmarks(path: str | os.PathLike, surface: str | None = None) -> LandmarkSet:
    """Read a landmark file, resolving its labels to canonical names.

    Parameters
    ----------
    path : path-like
        ``.json`` (canonical, or Slicer markups), ``.mrk.json``, ``.fcsv``, ``.pp``, ``.csv`` or
        ``.txt``.
    surface : {'skull', 'face'} or None
        Which surface the landmarks are on; lets labels such as "nasion" resolve (``N`` on the
        skull, ``n`` on the face). A canonical JSON file's own ``surface`` is used when None.

    Returns
    -------
    LandmarkSet
        Positions in mm, LPS.

    Raises
    ------
    InputError
        Naming the file, if it is missing, empty, unreadable, of an unknown kind, or has
        unknown or duplicated labels or non-finite coordinates.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "landmark file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, not a landmark file")
    kind = _kind(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(path, "landmark file is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(path, f"cannot read landmark file: {exc.strerror or exc}") from None
    if not text.strip():
        raise InputError(path, "landmark file is empty")

    if kind == "json":
        data = _load_json(path, text)
        if isinstance(data, dict) and "markups" in data:
            raws, frame = _parse_slicer_json(path, data)
        else:
            raws, frame, surface = _parse_canonical(path, data, surface)
    elif kind == "fcsv":
        raws, frame = _parse_fcsv(path, text)
    elif kind == "pp":
        raws, frame = _parse_pp(path, text)
    else:
        raws, frame = _parse_table(path, text)
    return _build(path, raws, frame, surface)


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".json"):
        return "json"
    for suffix, kind in ((".fcsv", "fcsv"), (".pp", "pp"), (".csv", "table"), (".txt", "table")):
        if name.endswith(suffix):
            return kind
    raise InputError(path, f"unknown landmark file type {path.suffix!r}; "
                           f"use one of {', '.join(SUFFIXES)}")


def _load_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: "
                               f"{exc.msg})") from None
    except RecursionError:  # Python's parser recurses once per level of [ or {
        raise InputError(path, "JSON nested too deeply (thousands of levels) to be a landmark file") from None


def _frame(path: Path, value: Any, where: str) -> str:
    """Normalise a coordinate-system tag: 'RAS'/'LPS', or Slicer's 0 (RAS) / 1 (LPS)."""
    tag = str(value).strip().upper()
    if tag in ("RAS", "0"):
        return "RAS"
    if tag in ("LPS", "1"):
        return "LPS"
    raise InputError(path, f"{where}: coordinate system {value!r} is neither RAS nor LPS")


def _check_units(path: Path, units: Any) -> None:
    if units is not None and str(units).strip().lower() not in ("mm", "millimeter", "millimetre"):
        raise InputError(path, f"coordinates are in {units!r}; skull2face needs millimetres")


def _parse_canonical(path: Path, data: Any, surface: str | None):
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(path, f"not a landmark file: a .json needs \"format\": \"{FORMAT}\" "
                               "(skull2face) or a \"markups\" list (3D Slicer)")
    version = data.get("version")
    if version != VERSION:
        raise InputError(path, f"landmark file version {version!r} is not supported "
                               f"(this skull2face reads version {VERSION})")
    _check_units(path, data.get("units", "mm"))
    frame = _frame(path, data.get("coordinate_system", "LPS"), "coordinate_system")
    file_surface = data.get("surface")
    if file_surface not in (None, *lm_names.SURFACES):
        raise InputError(path, f"surface is {file_surface!r}, expected 'skull', 'face' or null")
    if surface is not None and file_surface is not None and surface != file_surface:
        raise InputError(path, f"holds {file_surface} landmarks, but {surface} landmarks were asked for")
    surface = surface or file_surface
    landmarks = data.get("landmarks")
    if not isinstance(landmarks, dict):
        raise InputError(path, "\"landmarks\" must be an object of name: [x, y, z]")
    meta = data.get("meta") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, dict) for v in meta.values()):
        raise InputError(path, "\"meta\" must be an object of name: {...}")
    unmatched = [k for k in meta if k not in landmarks]
    if unmatched:
        raise InputError(path, f"\"meta\" has entries for landmarks not in \"landmarks\": "
                               f"{', '.join(unmatched)}")
    raws = [_Raw(label, xyz, dict(meta.get(label, {}))) for label, xyz in landmarks.items()]
    return raws, frame, surface


def _parse_slicer_json(path: Path, data: dict):
    markups = data.get("markups")
    if not isinstance(markups, list):
        raise InputError(path, "\"markups\" must be a list of markup nodes")
    raws: list[_Raw] = []
    frames: set[str] = set()
    for i, node in enumerate(markups):
        if not isinstance(node, dict):
            raise InputError(path, f"markups[{i}] is not an object")
        # Slicer 4.11+ writes the frame; files without it come from versions that use LPS.
        frame = _frame(path, node.get("coordinateSystem", "LPS"), f"markups[{i}]")
        _check_units(path, node.get("coordinateUnits"))
        points = node.get("controlPoints") or []
        if not isinstance(points, list):
            raise InputError(path, f"markups[{i}].controlPoints must be a list")
        for j, cp in enumerate(points):
            if not isinstance(cp, dict):
                raise InputError(path, f"markups[{i}].controlPoints[{j}] is not an object")
            # Slicer keeps unplaced points (status "undefined") in the list; they have no position.
            if cp.get("positionStatus") == "undefined":
                continue
            if "position" not in cp:
                raise InputError(path, f"markups[{i}].controlPoints[{j}] has no position")
            xyz = cp["position"]
            if frame == "RAS":
                xyz = _flip(path, xyz, cp.get("label"))
            frames.add(frame)
            meta = {"source": "given"}
            if cp.get("description"):
                meta["note"] = str(cp["description"])
            raws.append(_Raw(str(cp.get("label", f"#{j + 1}")), xyz, meta))
    # Points were converted one node at a time above, so the set is LPS whatever the nodes said.
    return raws, "LPS"


def _flip(path: Path, xyz: Any, label: Any) -> list:
    return [v * f for v, f in zip(_xyz(path, xyz, label), _RAS_FLIP)]


def _parse_fcsv(path: Path, text: str):
    frame = "RAS"  # fiducial files from before Slicer 4.11 have no tag and are RAS
    columns = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label",
               "desc", "associatedNodeID"]
    body: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            key, _, value = stripped.lstrip("#").partition("=")
            key = key.strip().lower()
            if key == "coordinatesystem":
                frame = _frame(path, value, "# CoordinateSystem")
            elif key == "columns":
                columns = [c.strip() for c in value.split(",")]
        elif stripped:
            body.append(line)
    if not all(c in columns for c in ("x", "y", "z", "label")):
        raise InputError(path, "the '# columns' header lacks x, y, z or label")
    ix, iy, iz, il = (columns.index(c) for c in ("x", "y", "z", "label"))
    idesc = columns.index("desc") if "desc" in columns else None
    raws = []
    for n, row in enumerate(csv.reader(body), start=1):
        if len(row) <= max(ix, iy, iz, il):
            raise InputError(path, f"fiducial row {n} has {len(row)} fields, expected {len(columns)}")
        meta = {"source": "given"}
        if idesc is not None and idesc < len(row) and row[idesc].strip():
            meta["note"] = row[idesc].strip()
        raws.append(_Raw(row[il].strip(), [row[ix], row[iy], row[iz]], meta))
    return raws, frame


def _parse_pp(path: Path, text: str):
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(path, f"not valid MeshLab picked-points XML: {exc}") from None
    raws = []
    for n, point in enumerate(root.iter("point"), start=1):
        # MeshLab keeps points the user switched off with active="0"; they were not picked.
        if point.get("active", "1").strip() == "0":
            continue
        label = point.get("name")
        if label is None:
            raise InputError(path, f"<point> {n} has no name")
        xyz = [point.get("x"), point.get("y"), point.get("z")]
        if any(v is None for v in xyz):
            raise InputError(path, f"point {label!r} lacks an x, y or z attribute")
        raws.append(_Raw(label, xyz, {"source": "given"}))
    return raws, "LPS"


def _parse_table(path: Path, text: str):
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError(path, "landmark file has no rows")
    sample = "\n".join(lines)
    delimiter = _delimiter(lines)
    if delimiter is None:
        # whitespace-separated: the last three fields are x y z, the rest is the label
        rows = [[" ".join(parts[:-3]), *parts[-3:]] if len(parts) >= 4 else parts
                for parts in (ln.split() for ln in lines)]
    else:
        rows = [[c.strip() for c in row] for row in csv.reader(io.StringIO(sample), delimiter=delimiter)]
        if delimiter != ",":  # decimal commas (European spreadsheets: 12,5;-3,25): unambiguous here
            rows = [[_DECIMAL_COMMA.sub(r"\1.\2", c) for c in row] for row in rows]
    cols = (0, 1, 2, 3)
    header = [c.lower() for c in rows[0]]
    if not _is_number(rows[0][1] if len(rows[0]) > 1 else ""):
        names_col = next((header.index(h) for h in ("name", "label", "landmark") if h in header), None)
        if names_col is None or not all(a in header for a in ("x", "y", "z")):
            other = next((f"; it looks {d!r}-separated" for d in (";", "\t", ",")
                          if d != delimiter and d in lines[0]), "")
            raise InputError(path, f"the header {', '.join(rows[0])} needs columns name, x, y, z{other}")
        cols = (names_col, header.index("x"), header.index("y"), header.index("z"))
        rows = rows[1:]
    raws = []
    for n, row in enumerate(rows, start=1):
        if len(row) <= max(cols):
            raise InputError(path, f"row {n} ({', '.join(row)}) needs name, x, y, z")
        raws.append(_Raw(row[cols[0]], [row[c] for c in cols[1:]], {"source": "given"}))
    return raws, "LPS"


_DECIMAL_COMMA = re.compile(r"^([-+]?\d+),(\d+)$")


def _delimiter(lines: list[str]) -> str | None:
    """The column separator of a table: the one of ``, ; tab`` that splits every line into the
    same number (>= 4) of fields; else the first present; None: whitespace."""
    present = [d for d in (",", ";", "\t") if any(d in ln for ln in lines)]
    for d in present:
        counts = {len(row) for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=d)}
        if len(counts) == 1 and counts.pop() >= 4:
            return d
    return present[0] if present else None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def _xyz(path: Path, xyz: Any, label: Any) -> np.ndarray:
    """Three finite float64 coordinates, or an InputError saying what is wrong."""
    if isinstance(xyz, (str, bytes)) or not hasattr(xyz, "__len__") or len(xyz) != 3:
        raise InputError(path, f"landmark {label!r}: expected 3 coordinates, got {xyz!r}")
    out = []
    for v in xyz:
        if isinstance(v, bool):
            v = None  # JSON true/false would otherwise pass as 1/0
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            raise InputError(path, f"landmark {label!r}: coordinate {v!r} is not a number") from None
    if not all(math.isfinite(v) for v in out):
        raise InputError(path, f"landmark {label!r} has a NaN or infinite coordinate")
    return np.array(out, dtype=np.float64)


def _build(path: Path, raws: list[_Raw], frame: str, surface: str | None) -> LandmarkSet:
    if not raws:
        raise InputError(path, "no landmarks in the file")
    points: dict[str, np.ndarray] = {}
    meta: dict[str, dict] = {}
    origin: dict[str, str] = {}
    bad: list[str] = []
    duplicated: list[str] = []
    for raw in raws:
        try:
            name = lm_names.resolve_name(raw.label, surface)
        except KeyError as exc:
            reason = getattr(exc, "reason", None) or f"{raw.label!r} is not a known landmark"
            bad.append(reason)
            continue
        if name in points:
            duplicated.append(f"{origin[name]!r} and {raw.label!r} are both {name}"
                              if origin[name] != raw.label else f"{raw.label!r} appears twice")
            continue
        points[name] = _xyz(path, raw.xyz, raw.label)
        origin[name] = raw.label
        if raw.meta:
            meta[name] = raw.meta
    if bad:
        valid = lm_names.surface_names(surface)
        which = f"{surface} landmark names" if surface else "landmark names"
        raise InputError(path, f"unrecognised landmark label(s): {'; '.join(bad)}. Valid {which}: "
                               f"{', '.join(valid)}")
    if duplicated:
        raise InputError(path, f"duplicate landmark labels: {'; '.join(duplicated)}")
    return LandmarkSet(points, frame, surface, meta)


# --- writing and checking --------------------------------------------------------------------

def write_landmarks(lms: LandmarkSet, path: str | os.PathLike) -> Path:
    """Write landmarks as canonical skull2face JSON (LPS, mm), atomically.

    A path ending in ``.mrk.json`` is written in 3D Slicer's format instead
    (`write_slicer_markups`), since that is what its name promises.

    Parameters
    ----------
    lms : LandmarkSet
    path : path-like
        Ends in ``.json``.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    if path.name.lower().endswith(".mrk.json"):
        return write_slicer_markups(lms, path)
    if path.suffix.lower() != ".json":
        raise InputError(path, "landmarks are written as .json (skull2face) or .mrk.json (3D Slicer)")
    data = {
        "format": FORMAT,
        "version": VERSION,
        "coordinate_system": "LPS",
        "units": "mm",
        "surface": lms.surface,
        "landmarks": {n: [float(v) for v in p] for n, p in lms.points.items()},
        "meta": {n: m for n, m in lms.meta.items() if n in lms.points and m},
        # why each of the surface's other landmarks has no point (e.g. its bone is missing); not read back
        "missing": {n: m for n, m in lms.meta.items() if n not in lms.points and m},
    }
    return write_json(path, data)


def write_slicer_markups(lms: LandmarkSet, path: str | os.PathLike) -> Path:
    """Write landmarks as a 3D Slicer point list (``.mrk.json``, LPS, mm), atomically.

    Open it in Slicer by dragging it onto the window; the labels are the canonical names.

    Parameters
    ----------
    lms : LandmarkSet
    path : path-like
        Should end in ``.mrk.json`` for Slicer to recognise it.

    Returns
    -------
    Path
        The written file.
    """
    points = []
    for i, (name, p) in enumerate(lms.points.items(), start=1):
        note = lms.meta.get(name, {}).get("note", "")
        points.append({
            "id": str(i),
            "label": name,
            "description": str(note),
            "associatedNodeID": "",
            "position": [float(v) for v in p],
            # identity orientation expressed in LPS, as Slicer itself writes it
            "orientation": [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],
            "selected": True,
            "locked": False,
            "visibility": True,
            "positionStatus": "defined",
        })
    data = {
        "@schema": _SLICER_SCHEMA,
        "markups": [{
            "type": "Fiducial",
            "coordinateSystem": "LPS",
            "coordinateUnits": "mm",
            "locked": False,
            "fixedNumberOfControlPoints": False,
            "labelFormat": "%N-%d",
            "lastUsedControlPointNumber": len(points),
            "controlPoints": points,
            "measurements": [],
        }],
    }
    return write_json(path, data)


def require(lms: LandmarkSet, names: Iterable[str], path: str | os.PathLike | None = None) -> LandmarkSet:
    """Check that every required landmark is present.

    Parameters
    ----------
    lms : LandmarkSet
    names : iterable of str
        Canonical names that must be in ``lms``.
    path : path-like or None
        The file the landmarks came from, named in the error.

    Returns
    -------
    LandmarkSet
        ``lms`` itself, for chaining.

    Raises
    ------
    InputError
        Listing the missing landmarks and those that are present.
    """
    missing = [n for n in names if n not in lms.points]
    if missing:
        have = ", ".join(lms.names) or "none"
        raise InputError(path, f"missing required landmark(s): {', '.join(missing)} (present: {have})")
    return lms
