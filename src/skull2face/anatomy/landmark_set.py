"""The `LandmarkSet` type: named 3D points on a skull or face, in mm, LPS.

Reading and writing landmark files lives in `skull2face.io.landmarks`; the names and their
anatomical definitions in `skull2face.anatomy.names`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from . import names as lm_names

FRAMES = ("LPS", "RAS")
# Diagonal that maps RAS to LPS and back.
RAS_FLIP = np.array([-1.0, -1.0, 1.0])


@dataclass(eq=False)
class LandmarkSet:
    """Named 3D points on a skull or face, in mm, stored in LPS.

    Parameters
    ----------
    points : dict of str to ndarray
        Canonical landmark name -> position, shape (3,), float64, mm.
    coordinate_system : {'LPS', 'RAS'}
        The frame ``points`` are given in. RAS points are converted to LPS on construction, so
        the attribute always reads ``'LPS'`` afterwards.
    surface : {'skull', 'face'} or None
        Which surface the landmarks are on, when they are all on one.
    meta : dict of str to dict
        Optional per-landmark notes, e.g. ``{"N": {"source": "detected", "note": "..."}}``.
    """

    points: dict[str, np.ndarray]
    coordinate_system: str = "LPS"
    surface: str | None = None
    meta: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.coordinate_system not in FRAMES:
            raise ValueError(f"coordinate_system must be 'LPS' or 'RAS', not {self.coordinate_system!r}")
        if self.surface not in (None, *lm_names.SURFACES):
            raise ValueError(f"surface must be 'skull', 'face' or None, not {self.surface!r}")
        flip = RAS_FLIP if self.coordinate_system == "RAS" else 1.0
        points = {}
        for name, p in self.points.items():
            p = np.array(p, dtype=np.float64).reshape(-1)
            if p.shape != (3,):
                raise ValueError(f"landmark {name}: expected 3 coordinates, got {p.size}")
            points[name] = p * flip
        self.points = points
        self.coordinate_system = "LPS"
        self.meta = {k: dict(v) for k, v in self.meta.items()}

    def __eq__(self, other: object) -> bool:
        # Exact: same names in the same order, bit-identical positions, same surface and meta.
        if not isinstance(other, LandmarkSet):
            return NotImplemented
        return (self.names == other.names and self.surface == other.surface
                and self.meta == other.meta
                and all(np.array_equal(p, other.points[n]) for n, p in self.points.items()))

    __hash__ = None  # mutable

    @property
    def names(self) -> list[str]:
        """Landmark names in insertion order."""
        return list(self.points)

    def __len__(self) -> int:
        return len(self.points)

    def __contains__(self, name: object) -> bool:
        return name in self.points

    def __getitem__(self, name: str) -> np.ndarray:
        return self.points[name]

    def as_array(self, names: Iterable[str] | None = None) -> np.ndarray:
        """Positions as one array.

        Parameters
        ----------
        names : iterable of str or None
            Which landmarks, in which order; None for all, in insertion order.

        Returns
        -------
        ndarray, shape (n, 3), float64, mm (LPS)

        Raises
        ------
        KeyError
            Listing the names that are not in the set.
        """
        names = self.names if names is None else list(names)
        missing = [n for n in names if n not in self.points]
        if missing:
            raise KeyError(f"landmarks not in the set: {', '.join(missing)}")
        if not names:
            return np.zeros((0, 3), dtype=np.float64)
        return np.stack([self.points[n] for n in names]).astype(np.float64, copy=False)

    def transformed(self, matrix: np.ndarray) -> "LandmarkSet":
        """A copy with every point moved by an affine transform.

        Parameters
        ----------
        matrix : array_like, shape (4, 4)
            Homogeneous affine acting on column vectors (``p' = M @ [p, 1]``), mm; its last
            row must be ``[0, 0, 0, 1]``.

        Returns
        -------
        LandmarkSet
            Same names, surface and meta; new positions.
        """
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape != (4, 4) or not np.all(np.isfinite(m)):
            raise ValueError(f"expected a finite 4x4 matrix, got shape {m.shape}")
        if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0]):
            raise ValueError("the matrix is not affine: its last row must be [0, 0, 0, 1]")
        moved = {n: m[:3, :3] @ p + m[:3, 3] for n, p in self.points.items()}
        return LandmarkSet(moved, "LPS", self.surface, self.meta)

    def to_ras(self) -> dict[str, np.ndarray]:
        """Positions converted to RAS (x and y negated), for tools that want RAS."""
        return {n: p * RAS_FLIP for n, p in self.points.items()}


def points_of(landmarks: LandmarkSet | Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """The usable points of a landmark set or a plain mapping.

    Parameters
    ----------
    landmarks : LandmarkSet, mapping of str to array_like (3,), or None
        Points in mm; entries that are None, not three numbers or not finite are dropped.

    Returns
    -------
    dict of str to numpy.ndarray, shape (3,), float64, mm
        In the input's order; empty for None.
    """
    points = getattr(landmarks, "points", landmarks)
    if points is None:
        return {}
    out = {}
    for name, p in dict(points).items():
        if p is None:
            continue
        a = np.asarray(p, dtype=np.float64).reshape(-1)
        if a.shape == (3,) and np.all(np.isfinite(a)):
            out[str(name)] = a
    return out
