"""Write the compact ICT-FaceKit head model bundled with skull2face.

Reads ``../shared/data/models/ict_facekit/ict_facekit_identity.npz`` (converted from the OBJ
files of ICT-VGL/ICT-FaceKit ``FaceXModel/``, commit da5f95a6; MIT licence; centimetres; +x
the subject's left, +y up, +z out of the face) and writes
``src/skull2face/data/models/ict_facekit_head.npz`` with:

* ``neutral`` (n, 3) float32, mm: the face (0-9408) and head_and_neck (9409-11247) vertices;
* ``modes`` (K, n, 3) float16, mm: the first K identity modes (each ~ +1 SD);
* ``faces`` (m, 3) int32: the model's quads among those vertices split into two triangles
  (a, b, c), (a, c, d), its triangles kept;
* ``face_region`` (n,) bool: the model's ``face`` part (vertices 0-9408);
* the openings of the eyes and the mouth are closed by a fan of triangles around one added
  vertex each (its neutral and modes: the mean of its opening's rim), so a face rendered
  from the front shows no hole into the head (``face_region`` is False there); the opening
  at the neck stays open;
* ``landmarks_multipie68`` (68,) int32: the 68 iBUG points' vertex ids;
* ``soft_names`` (k,) str and ``soft_ids`` (k,) int32: the paper's Table 2 soft-tissue
  landmarks on the neutral, by the rules in `soft_landmark_ids` (computed once, here).

Usage (from the repository root)::

    /work/venv/bin/python benchmarks/make_ict_subset.py [--shared ../shared] [--modes 40]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

N_KEEP = 11248  # face 0-9408 + head_and_neck 9409-11247 (the file's geometry_ranges)
N_FACE = 9409
CM_TO_MM = 10.0
MIDLINE_MM = 1.0  # |x| below this counts as on the mid-sagittal plane (the model is symmetric)


def _midline(v: np.ndarray) -> np.ndarray:
    return np.flatnonzero((np.abs(v[:, 0]) < MIDLINE_MM) & (np.arange(len(v)) < N_FACE))


def soft_landmark_ids(v: np.ndarray, ibug: np.ndarray) -> dict[str, int]:
    """Vertex ids of the paper's Table 2 soft landmarks on the neutral (mm, +x subject's left).

    iBUG points where they correspond: en_R = 39, en_L = 42 (inner eye corners), sn = 33
    (subnasale), al_R = 31, al_L = 35 (outer nostril
    points). The others by geometric rules on the
    face part (vertices 0-9408), midline meaning |x| < 1 mm:

    * g': the most anterior (max z) midline vertex from iBUG 27 (the top of the nose bridge) up
      to 30 mm above it (between the brows);
    * n: the deepest (min z) midline vertex between iBUG 27 and g' (the point of maximum
      concavity between the nose and the forehead; ~5 mm above iBUG 27);
    * pog': the most anterior midline vertex below the labiomental fold (the least anterior
      midline vertex in the upper half of the span from iBUG 8, the chin contour's lowest
      point, to iBUG 57, the lower lip's lowest point);
    * gn': the midline vertex from 15 mm below iBUG 8 up to pog' farthest along
      (0, -1, 1)/sqrt(2) (the constructed anterior-inferior chin point; it is iBUG 8 itself);
    * me: the lowest midline vertex at most 15 mm behind gn' (the chin's underside starts
      there; further back is the submental skin);
    * zy'_L / zy'_R: the most lateral face vertex (max / min x) within 5 mm of the height
      midway between en and sn, in front of the ear (z above iBUG 16's / 0's z);
    * go'_L / go'_R: the same at the height of the lower lip's lowest point (iBUG 57), where
      the jaw line turns at the mandibular angle (the iBUG jaw contour points 4 and 12 are
      frontal-silhouette points ~25 mm further forward than the bony gonion's skin);
    * t_L / t_R: the face or head vertex nearest to iBUG 16 / 0 moved 10 mm back (-z) and 5 mm
      down (the tragus lies just behind and below the contour's top at the ear).
    """
    out = {"en_R": 39, "en_L": 42, "sn": 33, "al_R": 31, "al_L": 35}
    out = {k: int(ibug[i]) for k, i in out.items()}
    mid = _midline(v)
    y_27, y_8, y_57 = v[ibug[27], 1], v[ibug[8], 1], v[ibug[57], 1]
    sel = mid[(v[mid, 1] >= y_27) & (v[mid, 1] <= y_27 + 30.0)]
    out["g'"] = int(sel[np.argmax(v[sel, 2])])
    sel = mid[(v[mid, 1] >= y_27) & (v[mid, 1] <= v[out["g'"], 1])]
    out["n"] = int(sel[np.argmin(v[sel, 2])])
    sel = mid[(v[mid, 1] >= (y_8 + y_57) / 2.0) & (v[mid, 1] <= y_57)]
    fold = v[sel[np.argmin(v[sel, 2])], 1]
    sel = mid[(v[mid, 1] >= y_8) & (v[mid, 1] <= fold)]
    out["pog'"] = int(sel[np.argmax(v[sel, 2])])
    sel = mid[(v[mid, 1] >= y_8 - 15.0) & (v[mid, 1] <= v[out["pog'"], 1])]
    out["gn'"] = int(sel[np.argmax(v[sel, 2] - v[sel, 1])])
    sel = mid[v[mid, 2] >= v[out["gn'"], 2] - 15.0]
    out["me"] = int(sel[np.argmin(v[sel, 1])])
    face = np.arange(N_FACE)
    for name, height in (("zy'", (v[out["sn"], 1] + v[out["en_L"], 1]) / 2.0), ("go'", y_57)):
        band = face[np.abs(v[face, 1] - height) <= 5.0]
        for side, sign, ear in (("L", 1.0, 16), ("R", -1.0, 0)):
            s = band[(v[band, 2] > v[ibug[ear], 2]) & (sign * v[band, 0] > 0)]
            out[f"{name}_{side}"] = int(s[np.argmax(sign * v[s, 0])])
    for side, ear in (("L", 16), ("R", 0)):
        p = v[ibug[ear]] + np.array([0.0, -5.0, -10.0])
        out[f"t_{side}"] = int(np.argmin(np.linalg.norm(v - p, axis=1)))
    return out


def boundary_loops(tri: np.ndarray) -> list[np.ndarray]:
    """The mesh's holes as closed vertex loops, each in the direction of its triangles' edges."""
    directed = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    have = {tuple(e) for e in directed.tolist()}
    nxt = {a: b for a, b in directed.tolist() if (b, a) not in have}
    loops, seen = [], set()
    for start in list(nxt):
        if start in seen:
            continue
        loop, cur = [], start
        while cur not in seen:
            seen.add(cur)
            loop.append(cur)
            cur = nxt[cur]
        loops.append(np.array(loop))
    return loops


def close_openings(v: np.ndarray, modes: np.ndarray, tri: np.ndarray, neck_below_mm: float = -100.0):
    """Fan-fill every hole whose rim lies above ``neck_below_mm`` (eyes and mouth, not the neck)."""
    v, modes, tri = list(v), [modes], [tri]
    n0 = len(v)
    added = []
    for loop in boundary_loops(tri[0]):
        if np.asarray(v)[loop, 1].mean() < neck_below_mm:
            continue
        c = len(v)
        v.append(np.asarray(v)[loop].mean(axis=0))
        modes.append(modes[0][:, loop].mean(axis=1, keepdims=True))
        # the rim runs along its triangles' edges; the cap's triangles run it backwards
        tri.append(np.stack([np.roll(loop, -1), loop, np.full(len(loop), c)], axis=1))
        added.append(c)
    return (np.asarray(v), np.concatenate(modes, axis=1), np.concatenate(tri).astype(np.int32),
            np.arange(len(v)) < min(n0, N_FACE), added)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--modes", type=int, default=40)
    ap.add_argument("--out", default="src/skull2face/data/models/ict_facekit_head.npz")
    a = ap.parse_args()
    src = Path(a.shared) / "data/models/ict_facekit"
    d = np.load(src / "ict_facekit_identity.npz")
    v = d["neutral"][:N_KEEP].astype(np.float64) * CM_TO_MM
    modes = d["identity_modes"][: a.modes, :N_KEEP].astype(np.float64) * CM_TO_MM
    q = d["faces"].astype(np.int64)
    q = q[(q[:, :3] < N_KEEP).all(axis=1) & (q[:, 3] < N_KEEP)]
    tri = np.concatenate([q[:, [0, 1, 2]], q[q[:, 3] >= 0][:, [0, 2, 3]]]).astype(np.int32)
    ibug = d["landmarks_multipie68"].astype(np.int32)
    soft = soft_landmark_ids(v, ibug)
    v, modes, tri, face_region, caps = close_openings(v, modes, tri)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, neutral=v.astype(np.float32), modes=modes.astype(np.float16), faces=tri,
                        face_region=face_region, landmarks_multipie68=ibug,
                        soft_names=np.array(list(soft)), soft_ids=np.array(list(soft.values()), dtype=np.int32))
    shutil.copyfile(src / "LICENSE_MIT.txt", out.parent / "LICENSE_MIT.txt")
    print(f"{out}: {len(v)} vertices, {len(tri)} triangles, {len(modes)} modes, openings closed at {caps}, {out.stat().st_size / 1e6:.2f} MB")
    for k, i in soft.items():
        print(f"  {k:6s} {i:6d} {np.round(v[i], 1)}")


if __name__ == "__main__":
    main()
