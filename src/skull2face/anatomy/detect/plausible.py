"""Is this a skull (or a face)? Checks that refuse junk instead of inventing landmarks on it.

Two checks, both cheap, both stated in millimetres:

* `surface_problem`, before detection: a skull or face mesh is a surface, most of whose edges
  join exactly two triangles (measured 97-100 % on the bundled skulls, CT skins and face
  scans). A triangle soup (triangles that share no edges, or join at random) is refused: at
  most `MIN_SHARED_EDGES` of its edges are shared.
* `anatomy_problem`, after detection: the landmarks that anchor everything must be there and
  in adult proportions. Skull: nasion and nasospinale, nasal height (N-Ns) 35-75 mm (adult
  means 50-55 mm, Martin & Saller), both lateral orbital rims (Fmt) and both zygomatic arches
  (Zy), bifrontal breadth 75-130 mm and bizygomatic breadth 95-175 mm (adult means ~100 and
  ~130-140 mm, Howells 1973), each pair at distances from nasion that differ by less than
  15 mm (a skull is mirror-symmetric). Face: nasion, subnasale and both inner eye corners,
  nasion-subnasale 35-80 mm and intercanthal width 20-50 mm (adult means ~55 and ~31 mm,
  Farkas 1994), the corners at distances from nasion that differ by less than 10 mm.
  A skull whose midface was found missing (`.parts`: Ns reported absent) is checked without
  nasospinale and the nasal height.
  A mesh in a pose the shape cues misread fails these too: `skull2face.anatomy.locate` then
  tries the other orientations of the coarse frame before giving up.

* `orbit_problem`, after `anatomy_problem` passes for a skull: a skull's orbits are open
  sockets. Seen from the front of its head frame, the bone 18 mm below nasion and half way out to
  each lateral orbital rim lies `ORBIT_MIN_DEPTH_MM` or more behind nasion, or is not there at all
  (measured 30-43 mm on the bundled skulls); on a face scan or a skin the same place is the eye,
  5-22 mm behind nasion (the bundled face scans, CT and MRI skins). So a face is not taken for a
  skull.

The ranges are wide on purpose (children, deformity, fragments are allowed to pass): they
refuse shapes that are not heads, not unusual heads.
"""

from __future__ import annotations

import numpy as np
import trimesh

from ..landmark_set import LandmarkSet

# Refuse a mesh when no more than this share of its edges join exactly two triangles.
MIN_SHARED_EDGES = 0.5


ORBIT_MIN_DEPTH_MM = 25.0
"""A skull's orbit lies at least this far behind nasion (see the module docstring)."""
_ORBIT_BELOW_N_MM = 18.0
_ORBIT_PATCH_PX = 12
# A face's eye centre: half the intercanthal width (~31 mm) plus half the eye fissure (~30 mm)
# out from the midline (Farkas 1994 adult means).
_EYE_OUT_MM = 30.0


class NotAnatomy(ValueError):
    """The shape is not a skull or face surface; the message says why, in one line."""


def shared_edge_share(mesh: trimesh.Trimesh) -> float:
    """Share (0..1) of a mesh's edges that join exactly two of its triangles.

    Vertices at the same position count as one (an STL stores every triangle's corners
    apart), so the share does not depend on how the vertices are stored.
    """
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if not len(faces):
        return 0.0
    verts = np.asarray(mesh.vertices, dtype=np.float64)

    def share(ids: np.ndarray) -> float:
        e = np.sort(ids[faces][:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        key = e[:, 0] * (int(ids.max()) + 1) + e[:, 1]
        _, counts = np.unique(key, return_counts=True)
        return float(np.count_nonzero(counts == 2) / len(counts))

    s = share(np.arange(len(verts), dtype=np.int64))
    if s > MIN_SHARED_EDGES:
        return s
    _, merged = np.unique(verts, axis=0, return_inverse=True)
    return share(merged.reshape(-1).astype(np.int64))


def surface_problem(mesh: trimesh.Trimesh) -> str | None:
    """Why the mesh is not a skull or face surface (one line), or None if it is one."""
    s = shared_edge_share(mesh)
    if s <= MIN_SHARED_EDGES:
        return (f"not a connected surface: only {100 * s:.0f} % of its edges join two triangles (a skull or face "
                f"mesh has > 95 %); is it a triangle soup?")
    return None


def _dist(lms: LandmarkSet, a: str, b: str) -> float | None:
    if a in lms.points and b in lms.points:
        return float(np.linalg.norm(np.asarray(lms.points[a]) - np.asarray(lms.points[b])))
    return None


def _pair(lms: LandmarkSet, base: str, anchor: str, breadth: tuple[float, float], asym: float,
          what: str) -> str | None:
    left, right = f"{base}_L", f"{base}_R"
    missing = [n for n in (left, right) if n not in lms.points]
    if missing:
        return f"no {what} found ({', '.join(missing)})"
    d = _dist(lms, left, right)
    if not breadth[0] <= d <= breadth[1]:
        return f"{what} {d:.0f} mm apart (a head: {breadth[0]:.0f}-{breadth[1]:.0f} mm)"
    dl, dr = _dist(lms, left, anchor), _dist(lms, right, anchor)
    if abs(dl - dr) > asym:
        return f"{what} not mirror images ({dl:.0f} and {dr:.0f} mm from {anchor})"
    return None


def anatomy_problem(lms: LandmarkSet, surface: str) -> str | None:
    """Why the landmarks do not show a skull (or face), in one line; None if they do.

    Parameters
    ----------
    lms : LandmarkSet
        Detected (and given) landmarks of the mesh, mm.
    surface : {"skull", "face"}

    Returns
    -------
    str or None
        The first check that fails (see the module docstring), or None.
    """
    if surface == "skull":
        anchors, height, lo_hi = ("N", "Ns"), ("N", "Ns"), (35.0, 75.0)
        what = "nasion and the nasal aperture"
    else:
        anchors, height, lo_hi = ("n", "sn"), ("n", "sn"), (35.0, 80.0)
        what = "nasion and the nose"
    if surface == "skull" and "Ns" not in lms.points and lms.meta.get("Ns", {}).get("absent"):
        # the midface is missing (`.parts`): nasion, the orbital rims and the arches must do
        anchors, height = ("N",), None
    missing = [n for n in anchors if n not in lms.points]
    if missing:
        notes = dict.fromkeys(lms.meta.get(n, {}).get("note", "not found") for n in missing)
        return f"no {what} found ({'; '.join(notes)})"
    h = None if height is None else _dist(lms, *height)
    if h is not None and not lo_hi[0] <= h <= lo_hi[1]:
        return f"{height[0]}-{height[1]} is {h:.0f} mm (a head: {lo_hi[0]:.0f}-{lo_hi[1]:.0f} mm)"
    if surface == "skull":
        return (_pair(lms, "Fmt", "N", (75.0, 130.0), 15.0, "lateral orbital rims")
                or _pair(lms, "Zy", "N", (95.0, 175.0), 15.0, "zygomatic arches"))
    return _pair(lms, "en", "n", (20.0, 50.0), 10.0, "inner eye corners")


def orbit_depths(mesh: trimesh.Trimesh, lms: LandmarkSet) -> list[float]:
    """How far behind nasion (mm, head-frame z) the surface lies at each orbit of a skull's (or a
    face's) landmarks: the median over a 12 x 12 mm patch 18 mm below nasion, half way from the
    midline to the lateral orbital rim (Fmt) on a skull, `_EYE_OUT_MM` out on a face; a pixel with
    no surface counts as 80 mm deep."""
    from ...geometry.depthmap import RenderSpec, render
    from ...geometry.frame import apply, head_frame

    surface = "face" if lms.surface == "face" else "skull"
    nasion = "N" if surface == "skull" else "n"
    frame = head_frame(lms.points, surface).matrix
    h = {k: apply(frame, np.asarray(v, dtype=np.float64)[None])[0] for k, v in lms.points.items()}
    out = []
    for side, sign in (("L", 1.0), ("R", -1.0)):
        if surface == "skull" and f"Fmt_{side}" not in h:
            continue
        x = 0.5 * float(h[f"Fmt_{side}"][0]) if surface == "skull" else sign * _EYE_OUT_MM
        centre = (x, float(h[nasion][1]) - _ORBIT_BELOW_N_MM)
        spec = RenderSpec(size=(_ORBIT_PATCH_PX, _ORBIT_PATCH_PX), mm_per_px=1.0, frame=frame, centre=centre)
        z = render(mesh, spec).height
        z = np.where(np.isfinite(z), z, h[nasion][2] - 80.0)
        out.append(float(h[nasion][2] - np.median(z)))
    return out


def orbit_problem(mesh: trimesh.Trimesh, lms: LandmarkSet) -> str | None:
    """Why a mesh whose landmarks passed `anatomy_problem` as a skull (or, given as a skull, as a
    face) is not a skull (its orbits are as shallow as eyes: a face scan or a skin), in one line;
    None if it is one."""
    try:
        depths = orbit_depths(mesh, lms)
    except ValueError:  # no head frame: anatomy_problem has said what is missing
        return None
    if depths and max(depths) < ORBIT_MIN_DEPTH_MM:
        return (f"its orbits lie only {', '.join(f'{d:.0f}' for d in depths)} mm behind nasion (a skull's are open "
                f"sockets, >= {ORBIT_MIN_DEPTH_MM:.0f} mm deep; a face's eyes 5-22 mm): this looks like a face scan "
                "or a skin, not a skull")
    return None
