"""Which parts of a skull are there: bone presence in head-frame regions, before landmarks are kept.

A skull can be partial (a face region, the midface, one half or the mandible broken off or cut
away). Its landmarks must then not be invented on the bone that is left (a "nasion" on the skull
base, a prosthion 57 mm away). `part_shares` measures, in the working head frame of detection
(`.work._Work` after the midline pass: +x the subject's left, +y up, +z anterior, nasion at the
origin, mm), the share of each part's expected region that holds bone surface; `absent_parts`
says which are missing; `needs` says which parts each landmark stands on. `.landmarks` reports a
landmark whose part is missing as missing, with the reason (``meta["absent"]``), instead of
placing it.

How a share is measured: the bone surface is cut into pieces no longer than `_PIECE_MM`
(`skull2face.geometry.sample.surface_pieces`, so the share does not depend on how finely the mesh
is tessellated), the pieces inside a region's box (not on a scan-cut lid) are projected along the
region's view, and the share is the fraction of `_CELL_MM` cells of the box's footprint that
hold at least one piece. On the bundled skulls in their head frames every region of a part they
have holds bone in 50-100 % of its cells; the same regions of a part cut away hold 0-10 %. A part
counts as present at `PRESENT_SHARE` or more. An orbit must also be open (`OPENINGS`): where a
face-less skull's frame put a "nasion" on the cut bone, the "orbits" were filled with bone.
The braincase (``vault``) is measured but no landmark needs it: the bundled headsq CT ends below
it (0 % of its region).

The regions are boxes sized from adult cranial means (Howells 1973, "Cranial variation in
man", Peabody Museum Papers 67; the ranges cover both sexes and his populations): maximum
cranial length (glabella-opisthocranion) 175-195 mm and breadth 130-145 mm, so the braincase
fills |x| <= 50 mm, 30-150 mm behind nasion, seen from above; orbit breadth ~40 mm and
interorbital breadth ~20-25 mm, so each orbit's upper margin and the brow above it fill 5-45 mm
out from the midline, 0-25 mm above nasion, seen from the front; nasal height (nasion-nasospinale)
~50 mm and upper facial height (nasion-prosthion) ~65-70 mm, so the nasal aperture and the
maxilla around it fill |x| <= 25 mm, 20-60 mm below nasion; bizygomatic breadth 125-140 mm, so
each side (zygomatic arch, temporal squama) fills 20-80 mm out, seen from the side; the mandible,
nasion-gnathion ~115-125 mm (Farkas 1994, "Anthropometry of the head and face", on the skin),
fills 85-130 mm below nasion, seen from the front.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...geometry.sample import surface_pieces

# A part is present when at least this share of its region's cells hold bone: measured 0.81-1.0
# on the parts the Arothron skull has, 0-0.10 on parts cut away, <= 0.47 for the braincase in
# a wrong orientation (module docstring); half way between.
PRESENT_SHARE = 0.2
_PIECE_MM = 2.5  # surface pieces no longer than this (mm): several per 4 mm cell
_CELL_MM = 4.0  # footprint cells (mm)

# part -> (view axis: 0 from the side, 1 from above, 2 from the front; x range, outward on the
# part's side for sided parts; y range; z range), mm, nasion at the origin (module docstring)
REGIONS: dict[str, tuple[int, tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "vault": (1, (-50.0, 50.0), (15.0, 110.0), (-150.0, -30.0)),
    "orbit_L": (2, (5.0, 45.0), (0.0, 25.0), (-25.0, 15.0)),
    "orbit_R": (2, (5.0, 45.0), (0.0, 25.0), (-25.0, 15.0)),
    "midface": (2, (-25.0, 25.0), (-60.0, -20.0), (-20.0, 20.0)),
    "side_L": (0, (20.0, 80.0), (-40.0, 40.0), (-120.0, -30.0)),
    "side_R": (0, (20.0, 80.0), (-40.0, 40.0), (-120.0, -30.0)),
    "mandible": (2, (-50.0, 50.0), (-130.0, -85.0), (-110.0, 20.0)),
}
# An orbit is an open socket: seen from the front, its aperture (centre ~30 mm out and ~18 mm
# below nasion, Howells 1973 orbit breadth and height ~40 x 34 mm) holds no bone within 22 mm
# behind nasion (its floor lies 30-43 mm behind: `.plausible.orbit_depths`). Measured on the
# Arothron skull: 36 % of the box's cells hold bone (its rims at the box's edges) in its head
# frame, 58-75 % where a face-less skull's frame put a "nasion" on the cut bone.
OPENINGS: dict[str, tuple[int, tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "orbit_L": (2, (24.0, 36.0), (-24.0, -12.0), (-20.0, 15.0)),
    "orbit_R": (2, (24.0, 36.0), (-24.0, -12.0), (-20.0, 15.0)),
}
OPEN_SHARE = 0.5  # an opening holding bone in more than this share of its cells is no orbit

WORDS = {
    "vault": "the braincase above and behind nasion",
    "orbit_L": "the left orbit",
    "orbit_R": "the right orbit",
    "midface": "the midface (nasal aperture and maxilla)",
    "side_L": "the left side (zygomatic arch, temporal bone)",
    "side_R": "the right side (zygomatic arch, temporal bone)",
    "mandible": "the mandible",
}

# landmark -> the parts it stands on (all must be present); a landmark not named needs none
_NEEDS: dict[str, tuple[str, ...]] = {
    "N": (), "G": (),
    "Ns": ("midface",), "Pr": ("midface",),
    "Gn": ("mandible",), "Pog": ("mandible",),
}
for _s in ("L", "R"):
    _NEEDS.update({f"Da_{_s}": (f"orbit_{_s}",), f"Fmt_{_s}": (f"orbit_{_s}",), f"Zy_{_s}": (f"side_{_s}",),
                   f"Go_{_s}": ("mandible", f"side_{_s}")})


def needs(name: str) -> tuple[str, ...]:
    """The parts (keys of `REGIONS`) a skull landmark stands on; () for one that needs none."""
    return _NEEDS.get(name, ())


def part_shares(vertices: np.ndarray, faces: np.ndarray, on_lid: Any = None) -> dict[str, float]:
    """Share of each part's region (`REGIONS`) that holds bone surface.

    Parameters
    ----------
    vertices : numpy.ndarray, shape (n, 3), float, mm
        The skull's vertices in its head frame (nasion at the origin, +x left, +y up, +z anterior).
    faces : numpy.ndarray, shape (m, 3), int
    on_lid : callable, optional
        Points (k, 3) -> bool (k,): True where a point lies on a scan-cut lid (no bone there).

    Returns
    -------
    dict of str to float
        Part -> share in [0, 1] of its region's footprint cells (`_CELL_MM`) holding bone.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    # only the triangles that can reach a region (the regions' union, padded by the longest edge)
    tri = v[f]
    edge = float(np.sqrt(((tri - np.roll(tri, 1, axis=1)) ** 2).sum(axis=2)).max()) if len(f) else 0.0
    reach = max(abs(a) for _, xr, _, _ in REGIONS.values() for a in xr) + edge
    lo_y = min(r[2][0] for r in REGIONS.values()) - edge
    hi_y = max(r[2][1] for r in REGIONS.values()) + edge
    lo_z = min(r[3][0] for r in REGIONS.values()) - edge
    hi_z = max(r[3][1] for r in REGIONS.values()) + edge
    c = tri.mean(axis=1)
    near = (np.abs(c[:, 0]) <= reach) & (c[:, 1] >= lo_y) & (c[:, 1] <= hi_y) & (c[:, 2] >= lo_z) & (c[:, 2] <= hi_z)
    pts = surface_pieces(v, f[near], _PIECE_MM)[0] if near.any() else np.zeros((0, 3))
    out = {}
    boxes = list(REGIONS.items()) + [(f"{k}_opening", v) for k, v in OPENINGS.items()]
    for part, (view, xr, yr, zr) in boxes:
        p = pts.copy()
        if part.endswith(("_R", "_R_opening")):
            p[:, 0] = -p[:, 0]  # outward on the subject's right
        lo = np.array([xr[0], yr[0], zr[0]])
        hi = np.array([xr[1], yr[1], zr[1]])
        inside = p[np.all((p >= lo) & (p <= hi), axis=1)]
        if len(inside) and on_lid is not None:
            back = inside.copy()
            if part.endswith(("_R", "_R_opening")):
                back[:, 0] = -back[:, 0]
            inside = inside[~np.asarray(on_lid(back), dtype=bool)]
        keep = [k for k in range(3) if k != view]
        n = np.maximum(np.ceil((hi[keep] - lo[keep]) / _CELL_MM).astype(np.int64), 1)
        cells = np.minimum(((inside[:, keep] - lo[keep]) // _CELL_MM).astype(np.int64), n - 1)
        out[part] = round(float(len(np.unique(cells[:, 0] * n[1] + cells[:, 1])) / (n[0] * n[1])), 3)
    return out


def absent_parts(shares: dict[str, float]) -> list[str]:
    """The parts whose share is below `PRESENT_SHARE` (or an orbit whose opening holds bone in
    more than `OPEN_SHARE`), in the order of `REGIONS`."""
    return [p for p in REGIONS if shares.get(p, 1.0) < PRESENT_SHARE
            or shares.get(f"{p}_opening", 0.0) > OPEN_SHARE]


def absence_note(parts: list[str], shares: dict[str, float]) -> str:
    """Why a landmark is not placed: its parts missing, with their shares, in one phrase."""
    def one(p: str) -> str:
        if shares.get(f"{p}_opening", 0.0) > OPEN_SHARE and shares[p] >= PRESENT_SHARE:
            return (f"{WORDS[p]} is missing (bone fills {100 * shares[p + '_opening']:.0f} % of where the orbit "
                    "opens on a skull)")
        return f"{WORDS[p]} is missing (bone in {100 * shares[p]:.0f} % of where it lies on a skull)"

    return "; ".join(one(p) for p in parts)


def summary(absent: list[str]) -> str:
    """The missing parts in words, for a user: 'the midface (...), the mandible'."""
    return ", ".join(WORDS[p] for p in absent)


# Breadth over length of a whole skull: the cranial index (maximum breadth / maximum length) is
# 0.65-0.90 (Howells 1973; measured 0.70-0.87 for the smallest over the largest extent of the
# bundled skulls, mandible or not); half a skull (cut at the mid-sagittal plane) gives ~0.43.
MIN_BREADTH_RATIO = 0.55


def breadth_ratio(vertices: np.ndarray) -> tuple[float, float, float]:
    """Smallest over largest extent of a skull along its principal axes, frame-free.

    Parameters
    ----------
    vertices : numpy.ndarray, shape (n, 3), mm

    Returns
    -------
    ratio : float
    smallest, largest : float
        The extents (mm): the 1-99 percentile range of the vertices along the axes.
    """
    v = np.asarray(vertices, dtype=np.float64)
    c = v - v.mean(axis=0)
    axes = np.linalg.svd(c[:: max(1, len(c) // 20000)], full_matrices=False)[2]
    q = c @ axes.T
    ext = np.percentile(q, 99, axis=0) - np.percentile(q, 1, axis=0)
    return float(ext.min() / max(ext.max(), 1e-9)), float(ext.min()), float(ext.max())


def half_problem(vertices: np.ndarray) -> str | None:
    """'one half of the skull seems missing ...' when it is too narrow for a whole skull; else None."""
    ratio, small, large = breadth_ratio(vertices)
    if ratio >= MIN_BREADTH_RATIO:
        return None
    return (f"one half (left or right) of the skull seems missing: it is {small:.0f} mm across against "
            f"{large:.0f} mm long (a whole skull's breadth is 65-90 % of its length)")
