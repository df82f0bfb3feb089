"""The head frame: one rigid coordinate system shared by skulls and faces.

Every skull and face is moved rigidly (rotation + translation, never scale, never a mirror)
into the same head frame before it is rendered, so that depth maps of different subjects and of
the two surfaces of one subject line up pixel for pixel.

The head frame, in millimetres, right-handed:

* **+x** points toward the subject's **left**;
* **+y** points **up** (superior);
* **+z** points **out of the face** (anterior), so ``z = x × y``;
* the **mid-sagittal plane** is ``x = 0``;
* the **origin** is nasion (skull ``N``, face ``n``) projected onto the mid-sagittal plane.

Input coordinates are usually DICOM LPS (+x patient left, +y posterior, +z superior). For a CT
in the standard position the head frame is then roughly
``x_head = x_lps, y_head = z_lps, z_head = -y_lps`` (up to the translation to nasion and the
small tilt of the head in the scanner).

Matrices are ``(4, 4)`` float64 homogeneous transforms acting on column vectors:
``p_head = M[:3, :3] @ p_input + M[:3, 3]``. The rows of ``M[:3, :3]`` are the head-frame axes
expressed in input coordinates.

Landmark names (keys of the ``points`` dict given to `head_frame`) follow Knyaz et al. (2020),
Tables 1 and 2, with ``_R``/``_L`` suffixes for bilateral points; see `BILATERAL`, `MIDLINE`,
`LOWER`, `UPPER` and `NASION`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Bilateral landmark stems; the keys are ``stem + "_R"`` and ``stem + "_L"``.
BILATERAL: dict[str, tuple[str, ...]] = {
    "skull": ("Zy", "Fmt", "Da", "Go"),
    "face": ("zy'", "en", "t", "al", "go'"),
}
# Landmarks on the mid-sagittal plane (used to place the plane).
MIDLINE: dict[str, tuple[str, ...]] = {
    "skull": ("N", "G", "Ns", "Pr", "Pog", "Gn"),
    "face": ("n", "g'", "sn", "pog'", "gn'", "me"),
}
# The "up" direction runs from the mean of the available LOWER to the mean of the UPPER ones.
LOWER: dict[str, tuple[str, ...]] = {"skull": ("Pr", "Ns"), "face": ("sn",)}
UPPER: dict[str, tuple[str, ...]] = {"skull": ("N", "G"), "face": ("n", "g'")}
# The origin. It is required: falling back to another landmark would shift the frame by
# centimetres between subjects and silently misalign their depth maps.
NASION: dict[str, str] = {"skull": "N", "face": "n"}
# Bilateral points that lie far behind nasion (zygion, gonion, tragion: 50..100 mm). If nasion
# is not in front of them, the left/right labels (or the mesh) are mirrored.
_POSTERIOR: dict[str, tuple[str, ...]] = {"skull": ("Zy", "Go"), "face": ("zy'", "t", "go'")}

# Orthonormality tolerance for matrices that claim to be rigid.
_RIGID_TOL = 1e-6


def _as_points(a: Any, name: str) -> np.ndarray:
    p = np.asarray(a, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"{name} must have shape (n, 3), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} holds NaN or infinite coordinates")
    return p


def as_rigid(matrix: Any, name: str = "matrix") -> np.ndarray:
    """Check that ``matrix`` is a proper rigid transform and return it as float64.

    Parameters
    ----------
    matrix : array_like, shape (4, 4)
        Homogeneous transform; translation in mm.
    name : str
        Used in the error message.

    Returns
    -------
    numpy.ndarray, shape (4, 4), float64
        A copy of ``matrix``.

    Raises
    ------
    ValueError
        If it is not ``(4, 4)``, not finite, its last row is not ``[0, 0, 0, 1]``, or its
        3x3 part is not a rotation (orthonormal with determinant +1, to 1e-6).
    """
    m = np.array(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"{name} must be a (4, 4) matrix, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} holds NaN or infinite values")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=_RIGID_TOL):
        raise ValueError(f"{name} must have last row [0, 0, 0, 1], got {m[3].tolist()}")
    r = m[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=_RIGID_TOL) or np.linalg.det(r) <= 0:
        raise ValueError(f"{name} is not rigid: its 3x3 part must be a rotation "
                         "(orthonormal, determinant +1; no scale, shear or mirror)")
    return m


def invert_rigid(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a rigid ``(4, 4)`` transform, exact to rounding (``R.T``, ``-R.T @ t``)."""
    m = np.asarray(matrix, dtype=np.float64)
    inv = np.eye(4)
    inv[:3, :3] = m[:3, :3].T
    inv[:3, 3] = -m[:3, :3].T @ m[:3, 3]
    return inv


def apply(matrix: np.ndarray, points: Any) -> np.ndarray:
    """Apply a ``(4, 4)`` transform to points ``(3,)`` or ``(n, 3)``; same shape, float64."""
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    # einsum, not `p @ R.T`: once Embree's worker threads exist, OpenBLAS's threaded gemm on a
    # 2-core machine slows ~20x (measured 50 ms vs 3 ms for 500k points); einsum stays off BLAS.
    return np.einsum("...j,ij->...i", p, m[:3, :3]) + m[:3, 3]


def project(points: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Signed distances of points along a direction: ``points @ direction``.

    Parameters
    ----------
    points : numpy.ndarray, shape (n, 3), float64, mm
    direction : numpy.ndarray, shape (3,), float64

    Returns
    -------
    numpy.ndarray, shape (n,), float64

    Written with einsum, not ``@``: after Embree has run in a process, threaded BLAS on small
    products is ~100x slower on some machines (see `apply`).
    """
    return np.einsum("ij,j->i", points, direction)


def rigid_fit(src: Any, dst: Any, weights: Any = None) -> np.ndarray:
    """Least-squares rigid transform taking ``src`` onto ``dst`` (Kabsch).

    Minimises ``sum_i w_i * |R @ src_i + t - dst_i|^2`` over rotations ``R`` (determinant +1:
    a mirror is never returned, even if it would fit better) and translations ``t``. There is
    no scale.

    Parameters
    ----------
    src, dst : array_like, shape (n, 3), float, mm
        Corresponding points, ``n >= 3`` and not all on one line.
    weights : array_like, shape (n,), optional
        Non-negative weights; at least three non-collinear points must have ``w > 0``.

    Returns
    -------
    numpy.ndarray, shape (4, 4), float64
        ``T`` with ``dst ≈ src @ T[:3, :3].T + T[:3, 3]``.

    Raises
    ------
    ValueError
        Mismatched shapes, too few points, negative weights, or a degenerate
        (collinear) configuration for which the rotation is undetermined.
    """
    s = _as_points(src, "src")
    d = _as_points(dst, "dst")
    if s.shape != d.shape:
        raise ValueError(f"src and dst must have the same shape, got {s.shape} and {d.shape}")
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (len(s),):
        raise ValueError(f"weights must have shape ({len(s)},), got {w.shape}")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and non-negative")
    if np.count_nonzero(w > 0) < 3:
        raise ValueError("rigid_fit needs at least 3 points with positive weight")
    w = w / w.sum()
    s_mean = w @ s
    d_mean = w @ d
    s0 = s - s_mean
    d0 = d - d_mean
    # Collinear points leave the rotation about their line free: refuse rather than guess.
    spread = np.linalg.svd(s0 * np.sqrt(w)[:, None], compute_uv=False)
    if spread[1] <= 1e-9 * max(spread[0], 1e-300):
        raise ValueError("rigid_fit: source points are collinear (or coincide); rotation is undetermined")
    h = (s0 * w[:, None]).T @ d0  # 3x3 cross-covariance
    u, _, vt = np.linalg.svd(h)
    # Flip the weakest axis if the best orthogonal fit is a reflection.
    flip = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    r = vt.T @ np.diag([1.0, 1.0, flip]) @ u.T
    t = np.eye(4)
    t[:3, :3] = r
    t[:3, 3] = d_mean - r @ s_mean
    return t


def frame_from_axes(origin: Any, left: Any, up: Any) -> np.ndarray:
    """Rigid matrix mapping input coordinates to a head frame given by its axes.

    ``left`` is normalised to give +x; ``up`` loses its component along x (Gram-Schmidt) and is
    normalised to give +y; +z = x × y (anterior). ``origin`` becomes (0, 0, 0).

    Parameters
    ----------
    origin : array_like, shape (3,), mm
        Head-frame origin in input coordinates.
    left : array_like, shape (3,)
        Direction toward the subject's left, in input coordinates (any length > 0).
    up : array_like, shape (3,)
        Roughly upward direction in input coordinates, not parallel to ``left``.

    Returns
    -------
    numpy.ndarray, shape (4, 4), float64
        Input -> head transform.

    Raises
    ------
    ValueError
        If ``left`` is zero or ``up`` is (nearly) parallel to it.

    Examples
    --------
    An LPS volume (+x left, +y posterior, +z superior) gives rows x, z and -y:

    >>> frame_from_axes([0, 0, 0], [1, 0, 0], [0, 0, 1])[:3, :3]
    array([[ 1.,  0.,  0.],
           [ 0.,  0.,  1.],
           [ 0., -1.,  0.]])
    """
    o = np.asarray(origin, dtype=np.float64).reshape(3)
    x = np.asarray(left, dtype=np.float64).reshape(3)
    u = np.asarray(up, dtype=np.float64).reshape(3)
    if not (np.all(np.isfinite(o)) and np.all(np.isfinite(x)) and np.all(np.isfinite(u))):
        raise ValueError("origin, left and up must be finite")
    nx = np.linalg.norm(x)
    if nx == 0.0:
        raise ValueError("left direction is zero")
    x = x / nx
    y = u - (u @ x) * x
    ny = np.linalg.norm(y)
    # sin(angle between up and left) below 1e-6: the up axis is numerically meaningless.
    if ny <= 1e-6 * max(np.linalg.norm(u), 1e-300):
        raise ValueError("up direction is zero or parallel to the left direction")
    y = y / ny
    z = np.cross(x, y)
    m = np.eye(4)
    m[:3, :3] = np.stack([x, y, z])
    m[:3, 3] = -m[:3, :3] @ o
    return m


@dataclass(eq=False)
class HeadFrame:
    """A rigid map from input coordinates (scanner, mesh file) to the head frame.

    Parameters
    ----------
    matrix : numpy.ndarray, shape (4, 4), float64
        Input -> head transform (see the module docstring). Must be rigid.
    surface : {'skull', 'face'} or None
        Which landmark set built it, for the record.
    landmarks : tuple of str
        Names of the landmarks that were used, for the record.

    Attributes
    ----------
    inverse : numpy.ndarray, shape (4, 4), float64
        Head -> input transform, computed from ``matrix``.
    """

    matrix: np.ndarray
    surface: str | None = None
    landmarks: tuple[str, ...] = ()
    inverse: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.matrix = as_rigid(self.matrix, "HeadFrame.matrix")
        self.landmarks = tuple(self.landmarks)
        self.inverse = invert_rigid(self.matrix)

    def to_head(self, points: Any) -> np.ndarray:
        """Input -> head coordinates; ``(3,)`` or ``(n, 3)`` mm in, same shape float64 out."""
        return apply(self.matrix, points)

    def to_input(self, points: Any) -> np.ndarray:
        """Head -> input coordinates; ``(3,)`` or ``(n, 3)`` mm in, same shape float64 out."""
        return apply(self.inverse, points)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (plain lists and strings) that `from_json` reads back exactly."""
        return {
            "format": "skull2face.head_frame",
            "version": 1,
            "convention": "input->head; +x subject's left, +y up, +z anterior; origin nasion on x=0; mm",
            "matrix": self.matrix.tolist(),
            "surface": self.surface,
            "landmarks": list(self.landmarks),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeadFrame:
        """Rebuild from `to_json` output. Raises ValueError (or KeyError) if malformed."""
        if data.get("format", "skull2face.head_frame") != "skull2face.head_frame":
            raise ValueError(f"not a head frame (format {data.get('format')!r})")
        return cls(matrix=np.asarray(data["matrix"], dtype=np.float64),
                   surface=data.get("surface"), landmarks=tuple(data.get("landmarks", ())))


def head_frame(points: Mapping[str, Any], surface: str) -> HeadFrame:
    """Build the head frame of one skull or face from its landmarks.

    * x (toward the subject's left): mean of the unit right->left directions of the available
      bilateral pairs (`BILATERAL`), normalised.
    * mid-sagittal plane: normal x, through the mean of the available midline landmarks
      (`MIDLINE`) and of the midpoints of the bilateral pairs.
    * y (up): from the mean of the available `LOWER` landmarks to the mean of the `UPPER` ones,
      made orthogonal to x.
    * z = x × y (anterior); origin = nasion (`NASION`) projected onto the mid-sagittal plane.

    Parameters
    ----------
    points : mapping of str to array_like, shape (3,), mm
        Landmarks in input coordinates. Unknown names are ignored; NaN points count as absent.
    surface : {'skull', 'face'}
        Which landmark set to use.

    Returns
    -------
    HeadFrame

    Raises
    ------
    ValueError
        If no bilateral pair is complete, nasion is absent, no lower or no upper midline
        landmark is present (the message names what is missing), a pair's two points
        coincide, the lower and upper landmarks are not at different heights (their difference
        is zero or parallel to x), or nasion lies behind zygion/gonion/tragion
        (left and right labels swapped, or a mirrored mesh).
    """
    if surface not in BILATERAL:
        raise ValueError(f"surface must be 'skull' or 'face', got {surface!r}")

    pts: dict[str, np.ndarray] = {}
    for name, p in points.items():
        a = np.asarray(p, dtype=np.float64).reshape(-1)
        if a.shape != (3,):
            raise ValueError(f"landmark {name!r} must have 3 coordinates, got shape {np.shape(p)}")
        if np.all(np.isfinite(a)):
            pts[name] = a

    pairs = [s for s in BILATERAL[surface] if f"{s}_R" in pts and f"{s}_L" in pts]
    lower = [n for n in LOWER[surface] if n in pts]
    upper = [n for n in UPPER[surface] if n in pts]
    nasion = NASION[surface]
    missing = []
    if not pairs:
        missing.append("a bilateral pair (one of " + ", ".join(f"{s}_R+{s}_L" for s in BILATERAL[surface]) + ")")
    if nasion not in pts:
        missing.append(f"nasion {nasion!r} (the origin)")
    if not lower:
        missing.append("a lower midline landmark (one of " + ", ".join(LOWER[surface]) + ")")
    if not upper:
        missing.append("an upper midline landmark (one of " + ", ".join(UPPER[surface]) + ")")
    if missing:
        raise ValueError(f"cannot build the {surface} head frame: missing " + "; ".join(missing))

    dirs = []
    for s in pairs:
        v = pts[f"{s}_L"] - pts[f"{s}_R"]
        n = np.linalg.norm(v)
        if n == 0.0:
            raise ValueError(f"landmarks {s}_R and {s}_L coincide")
        dirs.append(v / n)
    # Averaging unit vectors lets every pair vote equally, whatever its width.
    x = np.mean(dirs, axis=0)
    if np.linalg.norm(x) < 1e-6:
        raise ValueError("bilateral pairs point in opposite directions; check the _R/_L labels")
    x /= np.linalg.norm(x)

    on_plane = [pts[n] for n in MIDLINE[surface] if n in pts]
    on_plane += [(pts[f"{s}_R"] + pts[f"{s}_L"]) / 2.0 for s in pairs]
    plane_point = np.mean(on_plane, axis=0)

    up = np.mean([pts[n] for n in upper], axis=0) - np.mean([pts[n] for n in lower], axis=0)
    try:
        m = frame_from_axes(pts[nasion], x, up)
    except ValueError:
        raise ValueError(f"cannot build the {surface} head frame: the lower ({', '.join(lower)}) and "
                         f"upper ({', '.join(upper)}) midline landmarks coincide or lie on a left-right line") from None
    # Slide the origin along x onto the mid-sagittal plane (nasion is rarely exactly on it).
    origin = pts[nasion] - ((pts[nasion] - plane_point) @ x) * x
    m[:3, 3] = -m[:3, :3] @ origin

    posterior = [s for s in _POSTERIOR[surface] if s in pairs]
    if posterior:
        behind = np.mean([(pts[f"{s}_R"] + pts[f"{s}_L"]) / 2.0 for s in posterior], axis=0)
        if apply(m, behind)[2] >= 0.0:
            raise ValueError(f"nasion {nasion!r} is not in front of " + ", ".join(posterior) +
                             ": left and right landmarks seem swapped (or the mesh is mirrored)")

    used = sorted({*(f"{s}_{side}" for s in pairs for side in "RL"),
                   *(n for n in MIDLINE[surface] if n in pts), *lower, *upper, nasion})
    return HeadFrame(matrix=m, surface=surface, landmarks=tuple(used))
