"""Pseudo-T1 MRI heads made from CT heads: MR-like volumes whose true bone is known.

A head CT (Hounsfield units) is turned into a volume with the contrast of a T1-weighted MR
image, so that MR skull extraction (`skull2face extract --modality mr`) can be checked
against the bone the CT shows. Steps (`pseudo_t1`):

1. **Compartments** at the CT's resolution: the head (`geometry.surfaces.skin_mask`, -300 HU;
   outside it, e.g. the scanner table or a head holder, is dark as air is on MR), the skull
   (`geometry.surfaces.bone_mask`, > 300 HU), the cranial cavity (the head's voxels above
   `cavity_hu`, closed by `closing_mm`, filled slice by slice across the superior axis, minus
   the skull) and the
   cancellous bone (bone voxels > 300 HU whose six neighbours are bone too, up to
   `cortical_hu`: the diploe between the tables, not the partial-volume rim at the bone's
   surface).
2. **HU -> T1 intensity**: a piecewise-linear map of the (lightly smoothed) HU value, one map
   inside the cranial cavity and one outside it; cancellous bone is set to `marrow`.
3. **MR voxel size**: anti-aliasing Gaussian, then linear resampling onto a grid of
   ``spacing_mm`` over the same physical box (same direction; the box's centre kept).
4. **Bias field**: multiplied by ``exp(p)``, ``p`` a random polynomial of degree
   `bias_degree` in the grid's normalised coordinates scaled so that ``max |p| = log(1 +
   bias)``: the field lies in ``[1 / (1 + bias), 1 + bias]``.
5. **Rician noise**: ``|I + n1 + i n2|`` with ``n1, n2 ~ N(0, (noise * brightest)^2)``, the
   magnitude of a complex signal with Gaussian noise in both channels (Gudbjartsson H. &
   Patz S., "The Rician distribution of noisy MRI data", Magn Reson Med 34:910-914, 1995).

All random numbers come from ``numpy.random.default_rng(seed)``. Intensities are arbitrary
units, 0 (no signal) to about 1 (fat).

What the map follows. On T1-weighted images fat is bright; air, cortical bone and teeth give no
signal (dark); CSF and other free water are dark; white matter is brighter than grey matter;
fatty (yellow) marrow, as in the diploe of adult skulls, is bright. These are textbook facts
of MR contrast (e.g. Westbrook C. & Talbot J., *MRI in Practice*, 5th ed., Wiley 2018;
McRobbie D. W. et al., *MRI from Picture to Proton*, 3rd ed., Cambridge University Press
2017; marrow: Vogler J. B. & Murphy W. A., "Bone marrow imaging", Radiology 168:679-693,
1988). The HU ranges of the tissues are typical CT numbers (fat about -100, water and CSF
0..15, white matter ~25-30 and grey matter ~35-45, muscle ~40-60, cortical bone above
~1000 HU; e.g. Hsieh J., *Computed Tomography*, 2nd ed., SPIE Press 2009). The intensity
values themselves (fat 1.0, white matter 0.70, grey matter 0.60, muscle 0.45, ...) are OUR
choice, made to keep those orderings; they are not measured relaxation times, and no pulse
sequence is simulated. Known simplifications: tissue is told apart by HU alone, so a voxel that
mixes fat and muscle (about -50..0 HU) passes through the fluid value (a thin dark rim at fat /
muscle boundaries, smoothed away by the anti-aliasing); vitreous that the slice fill puts in the
cranial cavity gets the CSF value (0.15 against 0.12); no chemical shift, no flow, no
susceptibility artefacts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from ..geometry import voxelops
from ..geometry.surfaces import bone_mask, skin_mask
from ..io.volumes import Volume

#: Tissue labels of `tissue_labels` (0: outside the head).
TISSUES: tuple[str, ...] = ("outside", "air", "fat", "fluid", "soft_tissue", "csf", "white_matter",
                            "grey_matter", "cancellous_bone", "cortical_bone", "teeth")

_CROSS = ndimage.generate_binary_structure(3, 1)


@dataclass(frozen=True)
class PseudoT1Settings:
    """The HU -> T1 map and the compartments' rules.

    Attributes
    ----------
    outside_knots : tuple of (float, float)
        ``(HU, intensity)`` knots of the map outside the cranial cavity, HU increasing; linear
        between knots, flat beyond the ends. Air -> 0, fat (-150..-30 HU) -> 1.0, fluid
        (-10..15 HU, the vitreous) -> 0.12, muscle and other soft tissue (30..80 HU) -> 0.45,
        then a linear partial-volume path to cortical bone (700 HU and above) -> 0.05, teeth
        (enamel, 2500 HU and above) -> 0.
    inside_knots : tuple of (float, float)
        The same inside the cranial cavity: CSF (0..15 HU) -> 0.15, white matter (22..30 HU)
        -> 0.70, grey matter (40 HU) -> 0.60, blood and dura (80 HU) -> 0.45, then bone as
        outside.
    marrow : float
        Intensity of cancellous bone (fatty marrow of the diploe): bright.
    head_hu, bone_hu : float
        Skin and bone iso-values (HU), as extraction uses them.
    cortical_hu : float
        Bone above this (HU, at the CT's resolution) is cortical, not cancellous.
    cavity_hu : float
        The skull's rim for the cavity fill (HU): lower than ``bone_hu`` because thin or oblique
        bone (temporal squama, occipital) reads only 100..300 HU in 1.5 mm slices (seen on
        ``cranium_ct0051``), while soft tissue and blood stay below ~80 HU.
    closing_mm : float
        Gaps in that rim up to about twice this wide (thin temporal bone, sutures, foramina
        but the foramen magnum) are closed before the cranial cavity is filled; at least two
        of the CT's largest voxel sides (a coarse CT's thin bone breaks up more).
    ct_smooth_mm : float
        Gaussian sigma (mm) applied to the HU values before the map, so CT noise does not
        flip tissues (white matter and CSF are ~10 HU apart).
    bias_degree : int
        Degree of the bias field's polynomial.
    """

    outside_knots: tuple = ((-1000.0, 0.0), (-150.0, 1.0), (-30.0, 1.0), (-10.0, 0.12), (15.0, 0.12),
                            (30.0, 0.45), (80.0, 0.45), (700.0, 0.05), (2000.0, 0.05), (2500.0, 0.0))
    inside_knots: tuple = ((-1000.0, 0.0), (-150.0, 1.0), (-30.0, 1.0), (0.0, 0.15), (15.0, 0.15),
                           (22.0, 0.70), (30.0, 0.70), (40.0, 0.60), (80.0, 0.45), (700.0, 0.05),
                           (2000.0, 0.05), (2500.0, 0.0))
    marrow: float = 0.70
    head_hu: float = -300.0
    bone_hu: float = 300.0
    cortical_hu: float = 700.0
    cavity_hu: float = 100.0
    closing_mm: float = 4.0
    ct_smooth_mm: float = 0.7
    bias_degree: int = 2

    def __post_init__(self):
        for name in ("outside_knots", "inside_knots"):
            hu = [k[0] for k in getattr(self, name)]
            if len(hu) < 2 or np.any(np.diff(hu) <= 0):
                raise ValueError(f"{name} must hold at least two knots with increasing HU")
        if self.closing_mm < 0 or self.ct_smooth_mm < 0 or self.bias_degree < 1:
            raise ValueError("closing_mm and ct_smooth_mm must be >= 0, bias_degree >= 1")

    @property
    def brightest(self) -> float:
        """The brightest tissue's intensity (noise SD is relative to it)."""
        return float(max(max(k[1] for k in self.outside_knots), max(k[1] for k in self.inside_knots),
                         self.marrow))


def _interp(hu: np.ndarray, knots) -> np.ndarray:
    k = np.asarray(knots, dtype=np.float64)
    return np.interp(hu, k[:, 0], k[:, 1]).astype(np.float32)


def _superior_axis(vol: Volume) -> int:
    """Index axis most nearly along LPS superior."""
    return int(np.argmax(np.abs(vol.direction[2, :])))


def _closing_mm(mask: np.ndarray, spacing: np.ndarray, radius: float) -> np.ndarray:
    """Morphological closing by a ball of ``radius`` mm (exact Euclidean distances)."""
    if radius <= 0:
        return mask
    grown = ndimage.distance_transform_edt(~mask, sampling=spacing) <= radius
    return ~(ndimage.distance_transform_edt(grown, sampling=spacing) <= radius) | mask


def compartments(ct: Volume, settings: PseudoT1Settings | None = None) -> tuple[dict, dict]:
    """Head, bone, cranial cavity and cancellous bone masks of a head CT.

    Parameters
    ----------
    ct : Volume
        Head CT in HU, ``(nx, ny, nz)``.
    settings : PseudoT1Settings, optional

    Returns
    -------
    masks : dict of str to numpy.ndarray
        ``head``, ``bone``, ``cavity``, ``cancellous``: ``(nx, ny, nz)`` bool.
    record : dict
        Volumes (mL) and the rules, JSON-ready.
    """
    s = settings or PseudoT1Settings()
    head, _ = skin_mask(ct, s.head_hu)
    bone, _ = bone_mask(ct, s.bone_hu, head)
    closing = max(s.closing_mm, 2.0 * float(ct.spacing.max()))
    closed = _closing_mm((ct.voxels > s.cavity_hu) & head, ct.spacing, closing)
    cavity = voxelops.fill_slice_holes(closed, _superior_axis(ct)) & ~bone & head
    inner = ndimage.binary_erosion(ct.voxels > s.bone_hu, _CROSS)
    cancellous = inner & bone & (ct.voxels <= s.cortical_hu)
    ml = float(np.prod(ct.spacing)) / 1000.0
    record = {"head_ml": round(float(head.sum()) * ml, 1), "bone_ml": round(float(bone.sum()) * ml, 1),
              "cranial_cavity_ml": round(float(cavity.sum()) * ml, 1),
              "cancellous_ml": round(float(cancellous.sum()) * ml, 1),
              "cavity_rule": f"head voxels > {s.cavity_hu:g} HU closed by a {closing:g} mm ball, filled in "
                             f"slices across the superior axis, minus bone (> {s.bone_hu:g} HU)",
              "cancellous_rule": f"> {s.bone_hu:g} HU with all six neighbours too, <= {s.cortical_hu:g} HU"}
    return {"head": head, "bone": bone, "cavity": cavity, "cancellous": cancellous}, record


def t1_intensity(ct: Volume, masks: dict, settings: PseudoT1Settings | None = None) -> np.ndarray:
    """The HU -> T1 map at the CT's resolution (no resampling, bias or noise).

    Parameters
    ----------
    ct : Volume
        Head CT in HU.
    masks : dict
        From `compartments`.
    settings : PseudoT1Settings, optional

    Returns
    -------
    numpy.ndarray
        ``(nx, ny, nz)`` float32, arbitrary units (0 no signal, 1 fat).
    """
    s = settings or PseudoT1Settings()
    hu = ct.voxels.astype(np.float32)
    if s.ct_smooth_mm > 0:
        hu = ndimage.gaussian_filter(hu, s.ct_smooth_mm / ct.spacing, mode="nearest")
    out = np.where(masks["cavity"], _interp(hu, s.inside_knots), _interp(hu, s.outside_knots))
    out[masks["cancellous"]] = s.marrow
    out[~masks["head"]] = 0.0
    return out.astype(np.float32)


def tissue_labels(ct: Volume, masks: dict, settings: PseudoT1Settings | None = None) -> np.ndarray:
    """Which tissue the map takes each voxel for (index into `TISSUES`), for reports.

    HU bounds halfway between the knots' tissues: air < -400, fat < -20, fluid / CSF < 20,
    outside the cavity soft tissue < ``cortical_hu`` (bone voxels included where not
    cancellous), inside white matter < 35, grey matter < 80; cortical bone above
    ``cortical_hu``, teeth above 2000 HU.

    Returns
    -------
    numpy.ndarray
        ``(nx, ny, nz)`` int8.
    """
    s = settings or PseudoT1Settings()
    hu = ct.voxels
    cav = masks["cavity"]
    lab = np.full(ct.shape, TISSUES.index("soft_tissue"), dtype=np.int8)
    lab[hu < 20] = TISSUES.index("fluid")
    lab[(hu < 20) & cav] = TISSUES.index("csf")
    lab[(hu >= 20) & (hu < 35) & cav] = TISSUES.index("white_matter")
    lab[(hu >= 35) & (hu < 80) & cav] = TISSUES.index("grey_matter")
    lab[hu < -20] = TISSUES.index("fat")
    lab[hu < -400] = TISSUES.index("air")
    lab[hu > s.cortical_hu] = TISSUES.index("cortical_bone")
    lab[hu > 2000] = TISSUES.index("teeth")
    lab[masks["cancellous"]] = TISSUES.index("cancellous_bone")
    lab[~masks["head"]] = TISSUES.index("outside")
    return lab


def mr_grid(vol: Volume, spacing_mm) -> Volume:
    """An empty grid of ``spacing_mm`` over the same physical box as ``vol``.

    Same direction; as many voxels along each axis as fit the box (``round(n * s / s')``, at
    least 1); the box's centre is kept, so every LPS point means the same place in both.

    Returns
    -------
    Volume
        float32 zeros, ``spacing``, ``origin`` (LPS mm) and ``direction`` of the new grid.
    """
    new = np.asarray(spacing_mm, dtype=np.float64).reshape(3)
    if np.any(new <= 0):
        raise ValueError(f"spacing_mm must be positive, got {new.tolist()}")
    n = np.maximum(1, np.rint(np.asarray(vol.shape) * vol.spacing / new)).astype(int)
    centre = vol.origin + vol.direction @ (vol.spacing * (np.asarray(vol.shape) - 1) / 2.0)
    origin = centre - vol.direction @ (new * (n - 1) / 2.0)
    return Volume(voxels=np.zeros(tuple(n), dtype=np.float32), spacing=new, origin=origin,
                  direction=vol.direction.copy(), source=vol.source)


def resample(vol: Volume, values: np.ndarray, spacing_mm, order: int = 1, antialias: bool = True) -> Volume:
    """Resample ``values`` on ``vol``'s grid onto `mr_grid` ``(vol, spacing_mm)``.

    Anti-aliasing: a Gaussian of sigma ``sqrt(max(s'^2 - s^2, 0)) / 2.355`` mm per axis (the
    output voxel's width as a FWHM, less what the input voxel already averages), then
    trilinear (``order=1``) or nearest (``order=0``, labels; no smoothing) sampling.

    Parameters
    ----------
    vol : Volume
        The input grid (its voxels are not used).
    values : numpy.ndarray
        ``(nx, ny, nz)`` on that grid.
    spacing_mm : (float, float, float)
        Output voxel size, mm.

    Returns
    -------
    Volume
        Voxels of ``values``' dtype (float32 for ``order=1``); ``info["antialias_sigma_mm"]``.
    """
    grid = mr_grid(vol, spacing_mm)
    sigma_mm = np.sqrt(np.maximum(grid.spacing ** 2 - vol.spacing ** 2, 0.0)) / 2.3548
    src = values.astype(np.float32) if order else values
    if order and antialias and np.any(sigma_mm > 0):
        src = ndimage.gaussian_filter(src, sigma_mm / vol.spacing, mode="nearest")
    # same direction: output index -> input index is a per-axis scale and shift
    scale = grid.spacing / vol.spacing
    shift = np.linalg.solve(vol.direction @ np.diag(vol.spacing), grid.origin - vol.origin)
    out = ndimage.affine_transform(src, scale, offset=shift, output_shape=grid.shape, order=order,
                                   mode="nearest", prefilter=False)
    grid.voxels = out.astype(np.float32) if order else out
    grid.info = {"antialias_sigma_mm": [round(float(x), 3) for x in sigma_mm] if order and antialias else None}
    return grid


def bias_field(shape: tuple[int, int, int], rng: np.random.Generator, bias: float, degree: int = 2) -> np.ndarray:
    """A smooth multiplicative field ``exp(p)``, within ``[1 / (1 + bias), 1 + bias]``.

    ``p`` is a polynomial of total degree ``degree`` (no constant term) in the grid's index
    coordinates scaled to [-1, 1], with standard-normal coefficients, scaled so that its
    largest absolute value on the grid is ``log(1 + bias)``.

    Returns
    -------
    numpy.ndarray
        ``shape`` float32, dimensionless.
    """
    axes = [np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    p = np.zeros(shape, dtype=np.float64)
    for a in range(degree + 1):
        for b in range(degree + 1 - a):
            for c in range(degree + 1 - a - b):
                if a + b + c:
                    p = p + rng.standard_normal() * x ** a * y ** b * z ** c
    peak = float(np.abs(p).max())
    if bias <= 0 or peak == 0:
        return np.ones(shape, dtype=np.float32)
    return np.exp(p * (np.log1p(bias) / peak)).astype(np.float32)


def pseudo_t1(ct: Volume, spacing_mm=(2.0, 2.0, 2.0), seed: int = 0, bias: float = 0.2, noise: float = 0.03,
              settings: PseudoT1Settings | None = None) -> Volume:
    """A T1-weighted-looking MR head made from a head CT (see the module docstring).

    Parameters
    ----------
    ct : Volume
        Head CT, int16 or float HU, ``(nx, ny, nz)``, LPS geometry.
    spacing_mm : (float, float, float)
        Output voxel size, mm.
    seed : int
        Seeds ``numpy.random.default_rng`` for the bias field and the noise.
    bias : float
        Largest relative deviation of the bias field (0: none); the field lies in
        ``[1 / (1 + bias), 1 + bias]``.
    noise : float
        Rician noise SD (of each complex channel) relative to the brightest tissue (0: none).
    settings : PseudoT1Settings, optional
        The map and the compartments' rules.

    Returns
    -------
    Volume
        float32 voxels in arbitrary units (0 no signal, ~1 fat), on `mr_grid` ``(ct,
        spacing_mm)``: the same physical box and LPS directions as ``ct``. ``info["pseudo_t1"]``
        records the settings, the compartments' volumes and the bias field's range.
    """
    s = settings or PseudoT1Settings()
    if bias < 0 or noise < 0:
        raise ValueError(f"bias and noise must be >= 0, got {bias}, {noise}")
    masks, record = compartments(ct, s)
    out = resample(ct, t1_intensity(ct, masks, s), spacing_mm)
    rng = np.random.default_rng(seed)
    field = bias_field(out.shape, rng, bias, s.bias_degree)
    img = out.voxels * field
    sd = noise * s.brightest
    if sd > 0:
        real = img + rng.normal(0.0, sd, img.shape).astype(np.float32)
        imag = rng.normal(0.0, sd, img.shape).astype(np.float32)
        img = np.hypot(real, imag)
    out.voxels = img.astype(np.float32)
    out.info = {"pseudo_t1": {
        "source": ct.source, "ct_spacing_mm": ct.spacing.tolist(), "spacing_mm": out.spacing.tolist(),
        "seed": int(seed), "bias": float(bias), "bias_field_range": [float(field.min()), float(field.max())],
        "noise": float(noise), "noise_sd": float(sd), "noise_kind": "Rician (magnitude of complex Gaussian)",
        "antialias_sigma_mm": out.info["antialias_sigma_mm"], "units": "arbitrary (0 no signal, ~1 fat)",
        "settings": {k: (list(map(list, v)) if isinstance(v, tuple) else v) for k, v in asdict(s).items()},
        **record}}
    return out


__all__ = ["PseudoT1Settings", "TISSUES", "bias_field", "compartments", "mr_grid", "pseudo_t1", "resample",
           "t1_intensity", "tissue_labels"]
