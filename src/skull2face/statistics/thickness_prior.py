"""A dense soft-tissue thickness prior in the head frame, measured on real heads.

Published tables (`skull2face.anatomy.tissue`, Hona & Stephan 2024) give the tissue depth at
some twenty bony landmarks; between them a face has cheeks, lips and a nose the table says
nothing about. This module measures the thickness everywhere on the real paired heads of a
training split and keeps, per pixel of the frontal head map:

* the thickness ``T = face height - filled skull height`` (mm, along head-frame z, the viewing
  direction of the frontal maps), where the filled skull is
  `skull2face.geometry.fill.filled_height` (orbits, nasal aperture and gaps bridged by a
  closing with a disc of `FILL_RADIUS_MM`): the surface the tissue spans;
* its mean over the heads that cover the pixel, and its spread (the SD between heads,
  combined with the published SD of the nearest table landmarks, never below `MIN_SD_MM`);
* where no head covers a pixel: the published mean thicknesses at the training heads' skull
  landmarks (their mean head-frame positions), smoothly interpolated (Shepard,
  `skull2face.geometry.interpolate.shepard`), with the published SDs.

`build_prior` makes one from (skull map, face map, skull landmarks) triples; `ThicknessPrior`
holds it with its provenance (heads, table), is saved as ``.npz`` and read back at any grid
(`ThicknessPrior.sample`). The statistical face fit (`skull2face.statistics.face_model`) pulls
the model's face onto ``filled skull + T`` where the prior is measured, and the generator of
skull2face corrects that fit. `for_population` moves a prior to another population's table
and a build (``predict --thickness-table``, ``--build``).

Torch-free; heights in mm; maps are (H, W) float32 with NaN off the surface.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..anatomy.landmark_set import points_of
from ..anatomy.names import BONE_TO_SKIN
from ..anatomy.tissue import TABLE_SOURCE, Thickness, thickness_for
from ..geometry.depthmap import RenderSpec
from ..geometry.fill import filled_height
from ..geometry.interpolate import shepard
from ..geometry.smooth import nan_gaussian

FILL_RADIUS_MM = 15.0
"""Disc radius of the closing that makes the base surface (`skull2face.geometry.fill.DEFAULT_RADIUS_MM`:
spans the nasal aperture and most of an orbit)."""
MIN_SD_MM = 1.0
"""Floor of the prior's SD, mm (about the measurement error of a CT skin and bone at 1 mm)."""
MAX_THICKNESS_MM = 60.0
"""Thicker than this (or negative) is not tissue over bone (a scan cut, the neck below the
mandible); such pixels are not measured. The nose tip is ~30-35 mm over the filled aperture."""
N_FOR_SPREAD = 5
"""With fewer heads than this over a pixel, their spread is not used as the population's."""
RELATIVE_SD = 0.3
"""The relative spread standing in for it: the published SDs are ~20-40 % of the means over the
face (e.g. mid-philtrum 12.9 +- 2.8, cheek 10-20 +- 4-6 mm, Hona & Stephan 2024)."""
SMOOTH_MM = 2.0
"""Gaussian smoothing of each head's thickness map (sigma, mm): CT noise and staircase."""
SEAM_MM = 6.0
"""Width (sigma, mm) over which measured pixels blend into the table-interpolated ones."""


@dataclass(frozen=True)
class ThicknessPrior:
    """Per-pixel soft-tissue thickness above the filled skull, head frame, mm.

    Parameters
    ----------
    mean_mm, sd_mm : numpy.ndarray, shape (H, W), float32, mm
        Thickness above the filled skull along head-frame z, and its SD. Finite everywhere.
    n_heads : numpy.ndarray, shape (H, W), int16
        How many real heads were measured at the pixel (0: from the published table).
    mm_per_px : float
    centre : (float, float)
        Head-frame (x, y) of the grid's centre, mm (as `skull2face.geometry.depthmap.RenderSpec`).
    heads : tuple of str
        The real heads measured.
    table : str
        The published table used where no head covers a pixel.
    fill_radius_mm : float
        The base surface's closing radius (`filled_height`), mm.
    """

    mean_mm: np.ndarray
    sd_mm: np.ndarray
    n_heads: np.ndarray
    mm_per_px: float
    centre: tuple[float, float]
    heads: tuple[str, ...]
    table: str
    fill_radius_mm: float = FILL_RADIUS_MM

    def sample(self, spec: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The prior on another grid (bilinear; nearest edge value outside this grid).

        Parameters
        ----------
        spec : RenderSpec
            Only ``size``, ``mm_per_px`` and ``centre`` are used.

        Returns
        -------
        mean, sd : numpy.ndarray, shape spec.size, float32, mm
        n_heads : numpy.ndarray, shape spec.size, int16 (nearest pixel)
        """
        x, y = spec.xy_grid()
        h, w = self.mean_mm.shape
        col = (x - self.centre[0]) / self.mm_per_px + (w - 1) / 2.0
        row = (h - 1) / 2.0 - (y - self.centre[1]) / self.mm_per_px
        rc = np.stack([row, col])
        mean = ndimage.map_coordinates(self.mean_mm, rc, order=1, mode="nearest")
        sd = ndimage.map_coordinates(self.sd_mm, rc, order=1, mode="nearest")
        n = ndimage.map_coordinates(self.n_heads.astype(np.float32), rc, order=0, mode="nearest")
        return mean.astype(np.float32), sd.astype(np.float32), n.astype(np.int16)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for ``np.savez`` (and a model file); `from_arrays` reads them back."""
        return {"prior_mean_mm": self.mean_mm, "prior_sd_mm": self.sd_mm, "prior_n_heads": self.n_heads,
                "prior_mm_per_px": np.float64(self.mm_per_px), "prior_centre": np.asarray(self.centre),
                "prior_heads": np.array(self.heads, dtype=str), "prior_table": np.array(self.table),
                "prior_fill_radius_mm": np.float64(self.fill_radius_mm)}

    @classmethod
    def from_arrays(cls, d: Mapping[str, Any]) -> ThicknessPrior:
        """Inverse of `to_arrays` (raises KeyError or ValueError when malformed)."""
        mean = np.asarray(d["prior_mean_mm"], np.float32)
        sd = np.asarray(d["prior_sd_mm"], np.float32)
        n = np.asarray(d["prior_n_heads"], np.int16)
        if mean.ndim != 2 or sd.shape != mean.shape or n.shape != mean.shape or not np.isfinite(mean).all():
            raise ValueError("thickness prior arrays must be finite (H, W) maps of one shape")
        return cls(mean, sd, n, float(d["prior_mm_per_px"]), tuple(float(v) for v in np.asarray(d["prior_centre"])),
                   tuple(str(v) for v in np.asarray(d["prior_heads"]).reshape(-1)), str(np.asarray(d["prior_table"])),
                   float(d["prior_fill_radius_mm"]))

    def save(self, path: str | os.PathLike) -> None:
        """Write an ``.npz`` (atomically)."""
        from ..io.atomic import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **self.to_arrays())

    @classmethod
    def load(cls, path: str | os.PathLike) -> ThicknessPrior:
        """Read a file written by `save`."""
        with np.load(path) as d:
            return cls.from_arrays(d)


def base_height(skull_height: np.ndarray, mm_per_px: float, radius_mm: float = FILL_RADIUS_MM) -> np.ndarray:
    """The surface the tissue spans: the filled skull map (`filled_height`, no offset).

    Parameters
    ----------
    skull_height : numpy.ndarray, shape (H, W), mm, NaN off the bone
    mm_per_px : float
    radius_mm : float

    Returns
    -------
    numpy.ndarray, shape (H, W), float32, mm, finite (all zeros for an empty map)
    """
    return filled_height(skull_height, mm_per_px, radius_mm, 0.0)


def over_bone(skull_height: np.ndarray, mm_per_px: float, radius_mm: float = FILL_RADIUS_MM) -> np.ndarray:
    """Pixels over the bone's closed silhouette (gaps narrower than the closing bridged, holes
    filled): where the filled skull is a real base surface, not an extension of it.

    Returns
    -------
    numpy.ndarray, shape (H, W), bool
    """
    bone = np.isfinite(np.asarray(skull_height, np.float64))
    closed = ndimage.binary_closing(bone, iterations=max(1, int(round(radius_mm / mm_per_px))), border_value=0)
    return ndimage.binary_fill_holes(closed | bone)


def measure(skull_height: np.ndarray, face_height: np.ndarray, mm_per_px: float,
            radius_mm: float = FILL_RADIUS_MM) -> np.ndarray:
    """One real head's thickness map: face height minus filled skull height (mm).

    Parameters
    ----------
    skull_height, face_height : numpy.ndarray, shape (H, W), mm, NaN off the surface
        The head's frontal skull and face maps (same grid).
    mm_per_px : float
    radius_mm : float
        Closing radius of the base surface.

    Returns
    -------
    numpy.ndarray, shape (H, W), float32, mm
        NaN where the face is missing, the pixel lies outside the skull's closed silhouette,
        or the thickness is outside ``[0, MAX_THICKNESS_MM]``; smoothed by `SMOOTH_MM`.
    """
    skull = np.asarray(skull_height, np.float64)
    face = np.asarray(face_height, np.float64)
    base = base_height(skull, mm_per_px, radius_mm).astype(np.float64)
    t = face - base
    ok = over_bone(skull, mm_per_px, radius_mm) & np.isfinite(t) & (t >= 0.0) & (t <= MAX_THICKNESS_MM)
    return nan_gaussian(np.where(ok, t, np.nan), SMOOTH_MM / mm_per_px).astype(np.float32)


def _table_nodes(landmark_sets: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean head-frame (x, y) of each paired skull landmark, its published mean and SD (mm)."""
    xy, mean, sd = [], [], []
    for bone in BONE_TO_SKIN:
        pts = [points_of(s).get(bone) for s in landmark_sets]
        pts = [np.asarray(p, np.float64) for p in pts if p is not None and np.all(np.isfinite(p))]
        if not pts:
            continue
        row = thickness_for(bone)
        xy.append(np.mean(pts, axis=0)[:2])
        mean.append(row.mean_mm)
        sd.append(row.sd_mm)
    return np.array(xy).reshape(-1, 2), np.array(mean), np.array(sd)


TABLE_SOFTENING_MM = 5.0
"""Softening of the Shepard interpolation of table values between landmarks, mm (chosen: about
a landmark's placement uncertainty, so that the field is smooth through its nodes)."""


def _over_grid(x: np.ndarray, y: np.ndarray, xy_nodes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Values given at head-frame (x, y) nodes, Shepard-interpolated (`TABLE_SOFTENING_MM`) onto
    the pixels of head-frame coordinates ``x``, ``y`` (H, W); returns (H, W) float64."""
    grid = np.stack([np.ravel(x), np.ravel(y), np.zeros(np.size(x))], axis=1)
    nodes = np.concatenate([np.asarray(xy_nodes, np.float64).reshape(-1, 2), np.zeros((len(xy_nodes), 1))], axis=1)
    return shepard(grid, nodes, np.asarray(values, np.float64), softening_mm=TABLE_SOFTENING_MM).reshape(np.shape(x))


def _weighted_stats(values: np.ndarray, wts: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and spread over axis 0, 0 where no head counts.

    Below `N_FOR_SPREAD` heads at a pixel: the weighted mean and SD (reliability weights, with
    the unbiased correction n / (n - 1); SD 0 for one head). From `N_FOR_SPREAD` heads on, a
    robust pair, since a few defective heads (a mask shell, a bite block the gate missed) sit
    centimetres off: the weighted median and 1.4826 x the weighted median absolute deviation
    (the SD of a normal population; Rousseeuw & Croux 1993)."""
    total = wts.sum(axis=0)
    safe = np.maximum(total, 1e-12)
    mean = (wts * values).sum(axis=0) / safe
    var = (wts * (values - mean) ** 2).sum(axis=0) / safe
    var = var * np.where(n > 1, n / np.maximum(n - 1, 1), 0.0)
    if len(values) >= N_FOR_SPREAD:
        med = _weighted_median(values, wts)
        mad = 1.4826 * _weighted_median(np.abs(values - med), wts)
        many = n >= N_FOR_SPREAD
        mean, var = np.where(many, med, mean), np.where(many, mad ** 2, var)
    return np.where(n > 0, mean, 0.0), np.sqrt(var)


def _weighted_median(values: np.ndarray, wts: np.ndarray) -> np.ndarray:
    """Per-pixel weighted median over axis 0 (the lowest value whose cumulative weight reaches
    half the total); values of weight 0 do not count."""
    order = np.argsort(np.where(wts > 0, values, np.inf), axis=0)
    v = np.take_along_axis(values, order, axis=0)
    c = np.cumsum(np.take_along_axis(wts, order, axis=0), axis=0)
    first = np.argmax(c >= 0.5 * c[-1:], axis=0)
    return np.take_along_axis(v, first[None], axis=0)[0]


def build_prior(heads: Sequence[tuple[str, np.ndarray, np.ndarray, Any]], spec: Any,
                table: str = TABLE_SOURCE,
                weights: Sequence[Any] | None = None) -> ThicknessPrior:
    """Measure the prior on real paired heads.

    Parameters
    ----------
    heads : sequence of (str, numpy.ndarray, numpy.ndarray, mapping or LandmarkSet)
        ``(name, skull height, face height, skull landmarks in the HEAD FRAME)``: each head's
        frontal maps on the grid of ``spec`` (mm, NaN off the surface). The table's values are
        placed at the heads' mean landmark positions; with no head at all the prior is a
        constant 6 mm (the envelope's thickness) with an SD of 3 mm.
    spec : RenderSpec
        The maps' grid (size, mm_per_px, centre).
    table : str
        Provenance of the published values.
    weights : sequence of float or numpy.ndarray (H, W), optional
        Per head, how much its thickness counts, in [0, 1]: a constant (a coarse head at low
        weight) or a per-pixel map (0 where its region cannot be trusted: a bite block, a
        face out of the field of view). A pixel of weight 0 is not measured. Default: 1.

    Returns
    -------
    ThicknessPrior
    """
    h, w = spec.size
    s = float(spec.mm_per_px)
    maps = [measure(sk, fa, s) for _, sk, fa, _ in heads]
    stack = np.stack(maps) if maps else np.full((0, h, w), np.nan, np.float32)
    wts = np.ones_like(stack, dtype=np.float64)
    for i, wt in enumerate(weights if weights is not None else ()):
        wts[i] = np.broadcast_to(np.clip(np.asarray(wt, np.float64), 0.0, 1.0), (h, w))
    wts = np.where(np.isfinite(stack) & (wts > 0), wts, 0.0)
    stack = np.where(wts > 0, stack, 0.0)
    n = (wts > 0).sum(axis=0).astype(np.int16)
    head_mean, between = _weighted_stats(stack, wts, n)
    x, y = spec.xy_grid()
    xy_nodes, t_mean, t_sd = _table_nodes([lm for *_, lm in heads])
    if len(t_mean):
        table_mean = _over_grid(x, y, xy_nodes, t_mean)
        table_sd = _over_grid(x, y, xy_nodes, t_sd)
    else:
        table_mean = np.full((h, w), 6.0)  # no landmark at all: the envelope's 6 mm (see methods.envelope)
        table_sd = np.full((h, w), 3.0)
    # blend: measured where heads cover, table elsewhere, with a smooth seam
    cover = ndimage.gaussian_filter((n > 0).astype(np.float64), SEAM_MM / s)
    cover = np.where(n > 0, np.maximum(cover, 0.5), cover) * 2.0
    a = np.clip(cover, 0.0, 1.0)
    measured = np.where(n > 0, head_mean, table_mean)
    mean = a * measured + (1.0 - a) * table_mean
    # one head's thickness is not the population's: below N_FOR_SPREAD heads, the between-head
    # spread is not measured and a relative spread stands in for it
    spread = np.where(n >= N_FOR_SPREAD, between, RELATIVE_SD * np.abs(mean))
    sd = np.sqrt(spread ** 2 + table_sd ** 2)
    sd = np.maximum(sd, MIN_SD_MM)
    return ThicknessPrior(mean.astype(np.float32), sd.astype(np.float32), n, s, tuple(spec.centre),
                          tuple(name for name, *_ in heads), table)


def for_population(prior: ThicknessPrior, table_rows: Sequence[Thickness], landmarks_head: Any,
                   build_sd: float = 0.0, source: str = "a population table") -> ThicknessPrior:
    """The prior moved to another population's thickness table and to a build (same grid).

    1. Population: at every skull landmark of ``landmarks_head`` with a skin partner
       (`skull2face.anatomy.names.BONE_TO_SKIN`, as `build_prior` places the table) and a row in
       both tables, the difference of the means (``table_rows`` minus the bundled Hona & Stephan
       2024 table) and the ratio of the SDs; both Shepard-interpolated over the landmarks'
       head-frame (x, y) (`TABLE_SOFTENING_MM`) and applied everywhere, measured pixels too (the
       heads measured belong to the bundled table's population, not to this one): ``mean +
       difference`` (floored at 0), ``sd * ratio`` (floored at `MIN_SD_MM`).
    2. Build: ``build_sd`` times the (moved) prior's own SD added to the mean, floored at 0
       (`skull2face.anatomy.tissue.BUILDS`: -1 lean, 0 average, +1 heavy).

    Parameters
    ----------
    prior : ThicknessPrior
    table_rows : sequence of Thickness
        The population's rows BEFORE any build shift (`skull2face.anatomy.tissue.TissueTable`'s
        ``population``).
    landmarks_head : mapping of str to array_like (3,), or LandmarkSet
        The skull's landmarks in the HEAD FRAME (mm).
    build_sd : float
        The build's shift in SDs.
    source : str
        The table's provenance, for the result's ``table``.

    Returns
    -------
    ThicknessPrior
        ``prior`` itself when nothing changes (the bundled table's values and ``build_sd`` 0);
        else a new prior on the same grid. Without a landmark in both tables the population
        step is skipped.
    """
    pts = points_of(landmarks_head)
    xy, diff, ratio = [], [], []
    for bone in BONE_TO_SKIN:
        p = pts.get(bone)
        if p is None or not np.all(np.isfinite(p)):
            continue
        try:
            own, ref = thickness_for(bone, table_rows), thickness_for(bone)
        except KeyError:
            continue
        xy.append(np.asarray(p, np.float64)[:2])
        diff.append(own.mean_mm - ref.mean_mm)
        ratio.append(own.sd_mm / ref.sd_mm if ref.sd_mm > 0 else 1.0)
    moved = bool(xy) and (any(d != 0.0 for d in diff) or any(r != 1.0 for r in ratio))
    if not moved and build_sd == 0.0:
        return prior
    mean = prior.mean_mm.astype(np.float64)
    sd = prior.sd_mm.astype(np.float64)
    notes = []
    if moved:
        x, y = RenderSpec(size=mean.shape, mm_per_px=prior.mm_per_px, centre=prior.centre).xy_grid()
        mean = np.maximum(mean + _over_grid(x, y, np.array(xy), np.array(diff)), 0.0)
        sd = np.maximum(sd * _over_grid(x, y, np.array(xy), np.array(ratio)), MIN_SD_MM)
        notes.append(f"moved to {source} (mean differences and SD ratios at {len(xy)} landmarks)")
    if build_sd:
        mean = np.maximum(mean + build_sd * sd, 0.0)
        notes.append(f"build {build_sd:+g} SD")
    return ThicknessPrior(mean.astype(np.float32), sd.astype(np.float32), prior.n_heads, prior.mm_per_px,
                          prior.centre, prior.heads, f"{prior.table}; " + "; ".join(notes), prior.fill_radius_mm)


__all__ = ["FILL_RADIUS_MM", "MIN_SD_MM", "TABLE_SOFTENING_MM", "ThicknessPrior", "base_height", "build_prior",
           "for_population", "measure", "over_bone"]
