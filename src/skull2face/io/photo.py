"""Face photographs and their 2D landmarks, read with one-line errors naming the file.

`read_photo`
    A JPEG or PNG (also TIFF, BMP, WebP) as an RGB array (H, W, 3) uint8, after checking that it
    is a photograph: its size and sample type from the header before any pixel is decoded
    (`check_photo_header`: `MIN_SIDE_PX`, `MAX_PIXELS`, 8 bits per sample), its content after
    (not flat, not random noise: `neighbour_correlation`).
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
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..anatomy.names import UnknownLandmarkError, resolve_name
from ..errors import InputError, finite_number

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


MAX_PIXELS = 120_000_000
"""Largest photo accepted, in pixels, read from the header before decoding: above the ~102 MP of
the largest common camera sensors (medium format, 11,648 x 8,736 px) and the 30-60 MP of full-frame
cameras, while its decoded RGB (360 MB) and the pictures made from it stay a few times that. A
PNG that declares 30,000 x 30,000 px (900 MP, 2.7 GB decoded) is refused unread."""
MIN_SIDE_PX = 64
"""Smallest side of a photo accepted, in pixels: the face's landmarks lie a few to a few tens of
pixels apart in a 64 px image already, so a marker's +-1 px is several percent of the face."""
MAX_FILE_BYTES = 512 * 2**20
"""Largest photo file read, in bytes: an uncompressed 8-bit RGBA image of `MAX_PIXELS` is 480 MB."""
MIN_GREY_SD = 2.0
"""Smallest standard deviation of the grey levels (0-255) of a photograph: a flat image (one
colour, or one colour plus the 1-level noise of 8-bit rounding) shows nothing."""
MIN_NEIGHBOUR_CORRELATION = 0.3
"""Smallest correlation between horizontally and vertically neighbouring grey pixels of a
photograph. Neighbours in a real photo correlate > 0.5 (typically 0.85-0.99; the synthetic
photographs of the bundled heads 0.99) as the scene is smooth at the scale of a pixel; random
noise measures ~0 (also after JPEG compression at quality 30-95: |r| < 0.02)."""
_PAIRS = 1_000_000
"""Neighbour pairs sampled (whole rows and columns, every k-th) for the correlation: enough for
+-0.001, whatever the photo's size."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header declares, read without decoding its pixels.

    Attributes
    ----------
    format : str
        ``"PNG"``, ``"JPEG"``, ``"TIFF"``, ``"BMP"`` or ``"WebP"``.
    width, height : int
        Pixels, as stored (before any EXIF rotation).
    bits : int
        Bits per sample (channel); 8 for a palette image.
    channels : int
        Samples per pixel (1 grey, 2 grey + alpha, 3 colour, 4 colour + alpha or CMYK).
    """

    format: str
    width: int
    height: int
    bits: int
    channels: int


def _png_header(d: bytes) -> ImageHeader:
    if len(d) < 29 or d[12:16] != b"IHDR":
        raise ValueError("no IHDR chunk")
    w, h, depth, colour = struct.unpack(">IIBB", d[16:26])
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour)
    if channels is None:
        raise ValueError(f"unknown colour type {colour}")
    return ImageHeader("PNG", w, h, 8 if colour == 3 else depth, channels)  # a palette holds 8-bit colours


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(d: bytes) -> ImageHeader:
    i = 2
    while i + 4 <= len(d):
        if d[i] != 0xFF:
            raise ValueError(f"no segment marker at byte {i}")
        marker = d[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", d[i + 2:i + 4])
        if marker in _JPEG_SOF:
            if i + 10 > len(d):
                break
            bits, h, w, channels = struct.unpack(">BHHB", d[i + 4:i + 10])
            return ImageHeader("JPEG", w, h, bits, channels)
        if marker in (0xD9, 0xDA) or length < 2:  # end of image, or a scan before any frame header
            break
        i += 2 + length
    raise ValueError("no frame header (SOF) before the image data")


def _tiff_header(d: bytes) -> ImageHeader:
    e = "<" if d[:2] == b"II" else ">"
    (magic,) = struct.unpack(e + "H", d[2:4])
    if magic != 42:
        raise ValueError("BigTIFF is not read; save the photo as JPEG or PNG")
    (ifd,) = struct.unpack(e + "I", d[4:8])
    (n,) = struct.unpack(e + "H", d[ifd:ifd + 2])
    tags: dict[int, int] = {}
    for k in range(n):
        tag, typ, count, raw = struct.unpack(e + "HHI4s", d[ifd + 2 + 12 * k:ifd + 14 + 12 * k])
        if typ == 3:  # SHORT: the first value inline (2 of them fit), else at the offset
            at = raw if count <= 2 else d[struct.unpack(e + "I", raw)[0]:][:2]
            tags[tag] = struct.unpack(e + "H", at[:2])[0]
        elif typ == 4:  # LONG
            tags[tag] = struct.unpack(e + "I", raw)[0]
    if 256 not in tags or 257 not in tags:
        raise ValueError("no image width or height")
    return ImageHeader("TIFF", tags[256], tags[257], tags.get(258, 1), tags.get(277, 1))


def _bmp_header(d: bytes) -> ImageHeader:
    (size,) = struct.unpack("<I", d[14:18])
    if size == 12:  # OS/2 BITMAPCOREHEADER
        w, h, _, bpp = struct.unpack("<hhHH", d[18:26])
    else:
        w, h, _, bpp = struct.unpack("<iiHH", d[18:30])
    bits, channels = {8: (8, 1), 24: (8, 3), 32: (8, 4)}.get(bpp, (bpp, 1))
    return ImageHeader("BMP", abs(w), abs(h), bits, channels)  # a negative height: stored top-down


def _webp_header(d: bytes) -> ImageHeader:
    chunk = d[12:16]
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the frame tag and start code
        w, h = struct.unpack("<HH", d[26:30])
        return ImageHeader("WebP", w & 0x3FFF, h & 0x3FFF, 8, 3)
    if chunk == b"VP8L":  # lossless: 14-bit (size - 1) fields after the signature byte
        (v,) = struct.unpack("<I", d[21:25])
        return ImageHeader("WebP", (v & 0x3FFF) + 1, ((v >> 14) & 0x3FFF) + 1, 8, 4 if (v >> 28) & 1 else 3)
    if chunk == b"VP8X":  # extended: 24-bit (canvas size - 1) fields
        w = int.from_bytes(d[24:27], "little") + 1
        h = int.from_bytes(d[27:30], "little") + 1
        return ImageHeader("WebP", w, h, 8, 4 if d[20] & 0x10 else 3)
    raise ValueError(f"unknown WebP chunk {chunk!r}")


def read_image_header(data: bytes) -> ImageHeader | None:
    """The header of a PNG, JPEG, TIFF, BMP or WebP file's bytes, without decoding any pixel.

    Returns
    -------
    ImageHeader or None
        None when the bytes start like none of these formats.

    Raises
    ------
    ValueError
        The bytes start like one of them but the header is truncated or corrupt.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        parse = _png_header
    elif data[:3] == b"\xff\xd8\xff":
        parse = _jpeg_header
    elif data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        parse = _tiff_header
    elif data[:2] == b"BM" and len(data) >= 26:
        parse = _bmp_header
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        parse = _webp_header
    else:
        return None
    try:
        return parse(data)
    except (struct.error, IndexError) as exc:
        raise ValueError(f"truncated {parse.__name__[1:].split('_')[0].upper()} header ({exc})") from None


def check_photo_header(path: str | os.PathLike, data: bytes) -> ImageHeader:
    """Refuse, before decoding, a file that is not an image or whose header declares a size or
    sample type that is not a photograph's.

    Parameters
    ----------
    path : path-like
        The file (named in the error).
    data : bytes
        Its contents.

    Returns
    -------
    ImageHeader

    Raises
    ------
    InputError
        Not an image; a corrupt header; fewer than `MIN_SIDE_PX` px on a side; more than
        `MAX_PIXELS` px; not 8 bits per sample; a channel count other than 1-4.
    """
    try:
        head = read_image_header(data)
    except ValueError as exc:
        raise InputError(path, f"corrupt image: {exc}") from None
    if head is None:
        raise InputError(path, "not an image OpenCV can read (expected a JPEG or PNG photograph; TIFF, BMP "
                               "and WebP are read too)")
    w, h = head.width, head.height
    if w * h > MAX_PIXELS:
        raise InputError(path, f"the {head.format} header declares {w} x {h} px ({w * h / 1e6:.0f} megapixels), "
                               f"more than the {MAX_PIXELS / 1e6:.0f}-megapixel limit for a photograph; not decoded "
                               "(scale it down)")
    if min(w, h) < MIN_SIDE_PX:
        raise InputError(path, f"image is only {w} x {h} px: too small for a face photograph (at least "
                               f"{MIN_SIDE_PX} px a side)")
    if head.bits != 8:
        raise InputError(path, f"a {head.bits}-bit {head.format} image: a face photograph has 8 bits per channel "
                               "(converting it here would guess its contrast); save it as an 8-bit JPEG or PNG")
    if head.channels not in (1, 2, 3, 4):
        raise InputError(path, f"a {head.format} image with {head.channels} channels: expected grey or colour")
    return head


def neighbour_correlation(grey: np.ndarray) -> float:
    """Pearson correlation of horizontally and vertically neighbouring pixels of a grey image.

    Parameters
    ----------
    grey : numpy.ndarray, shape (H, W)
        Grey levels (any unit).

    Returns
    -------
    float
        In [-1, 1]; NaN for a flat image. Whole rows and columns are sampled (every k-th) so that
        about `_PAIRS` pairs of each direction enter, whatever the size.
    """
    h, w = grey.shape
    step = max(1, -(-h * w // _PAIRS))
    rows, cols = grey[::step].astype(np.float32), grey[:, ::step].astype(np.float32)
    a = np.concatenate([rows[:, :-1].ravel(), cols[:-1, :].ravel()]).astype(np.float64)
    b = np.concatenate([rows[:, 1:].ravel(), cols[1:, :].ravel()]).astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def _over_white(path: Path, raw: np.ndarray | None, colour: np.ndarray) -> np.ndarray:
    """A photo with an alpha channel composited over white, as image viewers show it (the colour
    under fully transparent pixels is arbitrary: often black, or an older picture); BGR uint8.
    A photo with no visible pixel is refused."""
    if raw is None or raw.ndim != 3 or raw.shape[2] not in (2, 4) or raw.shape[:2] != colour.shape[:2]:
        return colour  # no alpha after all (a CMYK TIFF), or turned: keep the plain decode
    alpha = raw[:, :, -1:].astype(np.float64) / 255.0
    if not np.any(alpha > 0.0):
        raise InputError(path, "the photo is fully transparent (alpha 0 everywhere): nothing of it can be seen")
    out = colour.astype(np.float64) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


FACE_MIN_HEIGHT_PX = 32
"""A face whose marked landmarks span fewer pixels than this from nasion to the chin cannot be
superimposed to a millimetre (a face ~120 mm high: < 4 mm per pixel)."""


def check_face_layout(path: str | os.PathLike, points: dict[str, np.ndarray], photo: np.ndarray) -> None:
    """Whether a photo's landmarks can be a face seen in it: the midline runs down the face in
    order (``g'``/``n`` above ``sn`` above ``pog'``/``gn'``/``me``), the eyes lie above the nose,
    the subject's left lies on the image's right of the subject's right (a photo of a face, not
    its mirror image), the face spans at least `FACE_MIN_HEIGHT_PX`, and the picture under the
    landmarks is not blank.

    Parameters
    ----------
    path : path-like
        The landmark file (named in the error).
    points : dict of str to numpy.ndarray (2,)
        Face landmark -> pixel (x right, y down), as `read_photo_landmarks` returns.
    photo : numpy.ndarray, shape (H, W, 3), uint8

    Raises
    ------
    InputError
        Naming the file and what is not face-like.
    """
    p = {k: np.asarray(v, np.float64) for k, v in points.items()}
    top = next((p[k] for k in ("n", "g'") if k in p), None)
    low = next((p[k] for k in ("me", "gn'", "pog'") if k in p), None)
    if top is None or low is None:
        return  # too few midline points to say which way the face runs (the solve needs its own count)
    height = float(np.linalg.norm(low - top))
    if height < FACE_MIN_HEIGHT_PX:
        raise InputError(path, f"the face spans {height:.0f} px from nasion to the chin: too small to superimpose "
                               f"(at least {FACE_MIN_HEIGHT_PX} px)")
    down = (low - top) / height
    right = np.array([down[1], -down[0]])  # the image's right for an upright face
    along = {k: float((v - top) @ down) for k, v in p.items()}
    midline = [k for k in ("g'", "n", "sn", "pog'", "gn'", "me") if k in p]
    order = [along[k] for k in midline]
    if any(b < a - 0.05 * height for a, b in zip(order, order[1:])):
        raise InputError(path, "the midline landmarks are out of order down the face ("
                               + ", ".join(f"{k} at {along[k]:.0f} px" for k in midline)
                               + " along nasion -> chin): not the landmarks of a face in this photo")
    for eye in ("en_L", "en_R"):
        if eye in p and "sn" in p and not along[eye] < along["sn"]:
            raise InputError(path, f"{eye} lies below subnasale: not the landmarks of a face in this photo")
    if "en_L" in p and "en_R" in p and (p["en_L"] - p["en_R"]) @ right <= 0:
        raise InputError(path, "en_L (the subject's left eye) lies on the image's left of en_R: left and right "
                               "are swapped, or the photo is mirrored (a selfie); mirror the photo or fix the file")
    pts = np.array(list(p.values()))
    lo = np.clip(np.floor(pts.min(axis=0) - 0.1 * height), 0, None).astype(int)
    hi = np.ceil(pts.max(axis=0) + 0.1 * height).astype(int)
    patch = photo[lo[1]:hi[1] + 1, lo[0]:hi[0] + 1].astype(np.float64).mean(axis=2)
    if patch.size and float(patch.std()) < MIN_GREY_SD:
        raise InputError(path, "the photo is blank where the landmarks lie: not the landmarks of a face in this photo")


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """The photo as RGB, shape (H, W, 3), uint8 (greyscale is repeated; an alpha channel is
    composited over white, as viewers show it; a JPEG's EXIF orientation is applied, as image
    viewers do, so pixels match what a marker saw).

    Its header is checked before any pixel is decoded (`check_photo_header`: size within
    `MIN_SIDE_PX` and `MAX_PIXELS`, 8 bits per sample), and its content after: not flat
    (`MIN_GREY_SD`) and not random noise (`MIN_NEIGHBOUR_CORRELATION`).

    Raises
    ------
    InputError
        Naming the file and the problem: missing, empty, too large a file, not an image, a
        size or sample type no photograph has, flat, or noise.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "photo not found")
    size = p.stat().st_size
    if not size:
        raise InputError(p, "photo is an empty file")
    if size > MAX_FILE_BYTES:
        raise InputError(p, f"photo file is {size / 2**20:.0f} MiB, more than the {MAX_FILE_BYTES / 2**20:.0f} MiB "
                            "of any photograph within the size limit")
    data = p.read_bytes()
    head = check_photo_header(p, data)
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise InputError(p, f"a {head.format} file OpenCV cannot decode (truncated or corrupt?)")
    if head.format in ("PNG", "WebP"):  # an alpha channel (or a palette's transparency): what a viewer shows
        img = _over_white(p, cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED), img)
    if sorted(img.shape[:2]) != sorted((head.width, head.height)):  # EXIF may turn it by 90 degrees
        raise InputError(p, f"decoded as {img.shape[1]} x {img.shape[0]} px, but its header declares "
                            f"{head.width} x {head.height} px (corrupt?)")
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    sd = float(grey.std())
    if sd < MIN_GREY_SD:
        raise InputError(p, f"the image is flat (grey levels vary by SD {sd:.1f} of 255): not a photograph")
    r = neighbour_correlation(grey)
    if not r >= MIN_NEIGHBOUR_CORRELATION:
        raise InputError(p, f"the image looks like random noise, not a photograph: neighbouring pixels correlate "
                            f"r = {r:.2f} (a photograph: > 0.5; refused below {MIN_NEIGHBOUR_CORRELATION})")
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


__all__ = ["FACE_MIN_HEIGHT_PX", "check_face_layout", "MAX_PIXELS", "MIN_SIDE_PX", "MIN_NEIGHBOUR_CORRELATION", "PHOTO_SUFFIXES", "ImageHeader",
           "check_photo_header", "neighbour_correlation", "read_image_header", "read_photo",
           "read_photo_landmarks", "write_photo_landmarks"]
