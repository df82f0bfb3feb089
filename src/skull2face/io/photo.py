"""Face photographs and their 2D landmarks, read with one-line errors naming the file.

`read_photo`
    A JPEG/PNG (anything OpenCV decodes) as an RGB array (H, W, 3) uint8.
`read_photo_landmarks`
    Pixel positions of the paper's Table 2 soft-tissue landmarks in a photo, from

    * CSV: rows ``name,x,y`` (a header row ``name,x,y`` is optional; ``#`` starts a comment);
    * JSON: ``{"n": [x, y], ...}``, or ``{"landmarks": {...}}`` of the same, or a list of
      ``{"name": ..., "x": ..., "y": ...}``.

    ``x`` is the column and ``y`` the row, in pixels, the top-left pixel's centre at (0, 0)
    (pixel centres at integers, as OpenCV and `skull2face.geometry.camera`). Names are any
    spelling `skull2face.anatomy.names.resolve_name` accepts on the face (``n``, ``g'``,
    ``zy'_L``, ``subnasale``, ``left zygion``); ``_L``/``_R`` is the *subject's* side.

Nothing is written here and the inputs are never modified.
"""

from __future__ import annotations

import csv
import io as _io
import json
import os
from pathlib import Path

import numpy as np

from ..anatomy.names import UnknownLandmarkError, resolve_name
from ..errors import InputError, finite_number

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """The photo as RGB, shape (H, W, 3), uint8 (greyscale is repeated, alpha dropped; a JPEG's
    EXIF orientation is applied, as image viewers do, so pixels match what a marker saw).

    Raises
    ------
    InputError
        Naming the file: missing, empty, or not an image OpenCV can decode.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "photo not found")
    data = p.read_bytes()
    if not data:
        raise InputError(p, "photo is an empty file")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise InputError(p, "not an image OpenCV can read (expected a JPEG or PNG photograph)")
    if min(img.shape[:2]) < 16:
        raise InputError(p, f"image is only {img.shape[1]} x {img.shape[0]} px: too small for a face photograph")
    return np.ascontiguousarray(img[:, :, ::-1])  # BGR -> RGB


def _rows_from_csv(path: Path, text: str) -> list[tuple[str, object, object, str]]:
    rows = []
    for lineno, row in enumerate(csv.reader(_io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in row]
        if not rows and cells[0].lower() in ("name", "label", "landmark"):  # a header row
            continue
        if len(cells) < 3 or any(c for c in cells[3:]):
            raise InputError(path, f"line {lineno}: expected 'name,x,y' (3 fields), got {len(cells)}")
        rows.append((cells[0], cells[1], cells[2], f"line {lineno}"))
    return rows


def _rows_from_json(path: Path, text: str) -> list[tuple[str, object, object, str]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(path, f"not valid JSON ({exc})") from None
    if isinstance(data, dict) and "landmarks" in data:
        data = data["landmarks"]
    rows = []
    if isinstance(data, dict):
        for name, xy in data.items():
            if not isinstance(xy, (list, tuple)) or len(xy) != 2:
                raise InputError(path, f"landmark {name!r}: expected [x, y] in pixels, got {xy!r}")
            rows.append((name, xy[0], xy[1], f"landmark {name!r}"))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            if not isinstance(item, dict) or not {"name", "x", "y"} <= set(item):
                raise InputError(path, f"item {i}: expected {{\"name\": ..., \"x\": ..., \"y\": ...}}")
            rows.append((item["name"], item["x"], item["y"], f"item {i}"))
    else:
        raise InputError(path, "expected {\"name\": [x, y], ...} or a list of {\"name\", \"x\", \"y\"}")
    return rows


def read_photo_landmarks(path: str | os.PathLike, size: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Table 2 landmark name -> pixel position ``(x, y)``, float64, from a CSV or JSON file.

    Parameters
    ----------
    path : path-like
        ``.csv`` (or ``.txt``) or ``.json``.
    size : (int, int), optional
        The photo's width and height; every point must then lie inside it.

    Returns
    -------
    dict of str to numpy.ndarray, shape (2,)
        Canonical face landmark names (`skull2face.anatomy.names.FACE`).

    Raises
    ------
    InputError
        Naming the file and the line or landmark: missing or empty file, wrong layout, unknown
        or repeated names, coordinates that are not finite numbers or lie outside the image.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "photo landmark file not found")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(p, "photo landmark file is not UTF-8 text (expected CSV name,x,y or JSON)") from None
    if not text.strip():
        raise InputError(p, "photo landmark file is empty")
    if p.suffix.lower() == ".json" or text.lstrip()[:1] in "{[":
        rows = _rows_from_json(p, text)
    else:
        rows = _rows_from_csv(p, text)
    out: dict[str, np.ndarray] = {}
    for raw, x, y, where in rows:
        try:
            name = resolve_name(str(raw), "face")
        except UnknownLandmarkError as exc:
            raise InputError(p, f"{where}: {exc.reason} (face landmarks: {', '.join(exc.valid)})") from None
        if name in out:
            raise InputError(p, f"{where}: landmark {name} is given twice")
        xy = np.array([finite_number(x, p, f"{where}: x"), finite_number(y, p, f"{where}: y")])
        if size is not None:
            w, h = size
            if not (-0.5 <= xy[0] <= w - 0.5 and -0.5 <= xy[1] <= h - 0.5):
                raise InputError(p, f"{where}: {name} at ({xy[0]:g}, {xy[1]:g}) px lies outside the "
                                    f"{w} x {h} px photo")
        out[name] = xy
    if not out:
        raise InputError(p, "photo landmark file holds no landmarks")
    return out


def write_photo_landmarks(points: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Write ``name,x,y`` CSV (with a header) atomically, as `read_photo_landmarks` reads it."""
    from .atomic import write_text

    lines = ["name,x,y"] + [f"{k},{float(v[0]):.3f},{float(v[1]):.3f}" for k, v in points.items()]
    return write_text(path, "\n".join(lines) + "\n")


__all__ = ["PHOTO_SUFFIXES", "read_photo", "read_photo_landmarks", "write_photo_landmarks"]
