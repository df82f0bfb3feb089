"""Synthetic head-like CT volumes with known surfaces, for tests and benchmarks.

A phantom is a ball of soft tissue (skin) around a spherical bone shell, optionally with an
air cavity joined to the outside by an "airway" tube, a scanner table below the head, and a
metal speck. Values follow the signed distance to each boundary with a linear ramp as wide as
the largest voxel side, the way a scanner's partial-volume blur does; so the iso-surfaces at
-300 HU (skin) and 300 HU (bone) lie exactly on the nominal radii, and marching cubes can be
held to sub-voxel accuracy.
"""

from __future__ import annotations

import numpy as np

from .io.volumes import Volume

AIR_HU, TISSUE_HU, BONE_HU, METAL_HU = -1000.0, 40.0, 1000.0, 3000.0
SKIN_ISO_HU, BONE_ISO_HU = -300.0, 300.0


def _ramp(signed_mm: np.ndarray, iso: float, lo: float, hi: float, width: float) -> np.ndarray:
    """Value ``iso`` at distance 0, rising inside (negative distance) toward ``hi`` and falling
    outside toward ``lo`` with ONE slope, linear for at least ``width`` mm each way, so that
    linear interpolation between voxels finds the iso-surface exactly."""
    slope = min(hi - iso, iso - lo) / width
    return np.clip(iso - slope * signed_mm, lo, hi)


def head_phantom(shape: tuple[int, int, int] = (96, 96, 80),
                 spacing: tuple[float, float, float] = (2.0, 2.0, 2.5),
                 skin_radius: float = 80.0,
                 bone_radii: tuple[float, float] | None = (62.0, 70.0),
                 cavity_radius: float | None = None,
                 airway_radius: float | None = None,
                 table: bool = False,
                 metal_speck: bool = False,
                 stretch: tuple[float, float, float] = (1.0, 1.0, 1.0),
                 chunk: int = 32,
                 ramp_mm: float | None = None) -> Volume:
    """Make a head-like int16 HU volume centred in its grid, axes along L, P, S.

    Parameters
    ----------
    shape : (int, int, int)
        Grid size ``(nx, ny, nz)``.
    spacing : (float, float, float)
        Voxel size in mm (anisotropic allowed).
    skin_radius : float
        Radius (mm) of the skin sphere (iso -300 HU).
    bone_radii : (float, float) or None
        Inner and outer radius (mm) of the bone shell (iso 300 HU); None for no bone.
    cavity_radius : float or None
        Radius of an air ball at the centre (inside the bone), like the sinuses.
    airway_radius : float or None
        Radius of an air tube from the cavity straight to the outside toward anterior (-y),
        like the nasal airway: a 3D hole fill cannot close it, slice-wise filling must.
    table : bool
        Add a 10 mm scanner-table slab of soft-tissue density 8 mm behind the head (+y).
    metal_speck : bool
        Add a 2 mm ball of 3000 HU in the soft tissue (like streak debris); bone extraction
        must drop it.
    stretch : (float, float, float)
        Scale the distance field per axis (values > 1 elongate the head along that axis),
        for head-like ellipsoids; radii are then no longer exact.
    chunk : int
        Slices computed at a time, to bound memory for large grids.
    ramp_mm : float or None
        Width (mm) of the linear ramp at each boundary; None: the largest voxel side. A ramp
        much narrower than the voxel makes near-step edges, to be blurred and resampled like a
        scanner's (`skull2face.geometry.edges` tests).

    Returns
    -------
    Volume
        int16 voxels; geometry with identity direction and the head centred at the origin.
    """
    shape = tuple(int(n) for n in shape)
    sp = np.asarray(spacing, dtype=np.float64)
    origin = -sp * (np.asarray(shape) - 1) / 2.0
    width = float(sp.max()) if ramp_mm is None else float(ramp_mm)
    st = np.asarray(stretch, dtype=np.float64)
    x = (origin[0] + sp[0] * np.arange(shape[0]))[:, None, None] / st[0]
    y = (origin[1] + sp[1] * np.arange(shape[1]))[None, :, None] / st[1]
    out = np.empty(shape, dtype=np.int16)
    for k0 in range(0, shape[2], chunk):
        z = (origin[2] + sp[2] * np.arange(k0, min(k0 + chunk, shape[2])))[None, None, :] / st[2]
        r = np.sqrt(x * x + y * y + z * z)
        air_d = r - skin_radius  # > 0 outside the head
        if cavity_radius:
            cav = cavity_radius - r  # > 0 inside the cavity
            if airway_radius:
                tube = np.where(y < 0, airway_radius - np.sqrt(x * x + z * z), -np.inf)
                cav = np.maximum(cav, tube)
            air_d = np.maximum(air_d, cav)
        vals = _ramp(air_d, SKIN_ISO_HU, AIR_HU, TISSUE_HU, width)
        if bone_radii:
            r_in, r_out = bone_radii
            bone_d = np.maximum(r - r_out, r_in - r)  # < 0 inside the shell
            bone = _ramp(bone_d, BONE_ISO_HU, TISSUE_HU, BONE_HU, width)
            # bone lies in soft tissue: only there may it replace the skin field
            vals = np.where(air_d < -width, np.maximum(vals, bone), vals)
        if metal_speck:
            spot = np.sqrt((x - 0.0) ** 2 + (y + (skin_radius + (bone_radii or (0, 0))[1]) / 2) ** 2 + z * z)
            vals = np.maximum(vals, _ramp(spot - 2.0, BONE_ISO_HU, AIR_HU, METAL_HU, width))
        if table:
            y0 = skin_radius + 8.0
            slab = np.maximum(y0 - y, y - (y0 + 10.0)) + 0 * x + 0 * z
            vals = np.maximum(vals, _ramp(slab, SKIN_ISO_HU, AIR_HU, TISSUE_HU, width))
        out[:, :, k0:k0 + vals.shape[2]] = np.rint(vals).astype(np.int16)
    return Volume(voxels=out, spacing=sp, origin=origin, direction=np.eye(3), source="<phantom>",
                  info={"format": "phantom"})


def dental_metal(vol: Volume, centre: tuple[float, float, float], half_size: tuple[float, float, float] = (3.0, 3.0, 2.0),
                 streaks: int = 12, amplitude: float = 1500.0, reach_mm: float = 100.0,
                 width_mm: float = 2.0) -> tuple[Volume, Volume]:
    """Add a dental-metal block to a phantom, with and without the streaks it throws.

    The block (``METAL_HU``, a box of ``half_size`` mm about ``centre``, LPS mm) stands for a
    filling. Its streaks lie in the axial slices that cut the block, as beam-hardening and
    photon-starvation streaks do: ``streaks`` lines through the block's centre at even angles,
    alternately bright (``+amplitude`` HU) and dark (``-amplitude``), ``width_mm`` wide (a tent
    profile), fading linearly to nothing at ``reach_mm`` from the centre. Values are clipped to
    [-1024, 3071] HU, a 12-bit scanner's range.

    Parameters
    ----------
    vol : Volume
        From `head_phantom` (identity direction: axis 2 is superior).
    centre, half_size : (float, float, float)
        Block centre and half sides, LPS mm.
    streaks, amplitude, reach_mm, width_mm
        The streak fan, as above.

    Returns
    -------
    with_streaks, truth : Volume
        The phantom with the block and its streaks, and with the block alone (the known answer).
    """
    idx = np.indices(vol.shape, dtype=np.float64).reshape(3, -1).T
    lps = vol.to_lps(idx).reshape(*vol.shape, 3) - np.asarray(centre)
    block = np.all(np.abs(lps) <= np.asarray(half_size), axis=-1)
    truth = vol.voxels.astype(np.float32)
    truth[block] = METAL_HU
    slab = block.any(axis=(0, 1))
    x, y = lps[..., 0], lps[..., 1]
    dist = np.hypot(x, y)
    fade = np.clip(1.0 - dist / reach_mm, 0.0, None)
    noisy = truth.copy()
    for i in range(streaks):
        angle = np.pi * i / streaks
        across = np.abs(-np.sin(angle) * x + np.cos(angle) * y)  # distance from the line through the centre
        tent = np.clip(1.0 - across / width_mm, 0.0, None)
        sign = 1.0 if i % 2 == 0 else -1.0
        noisy[:, :, slab] += (sign * amplitude * tent * fade)[:, :, slab]
    noisy[block] = METAL_HU
    out = []
    for v in (noisy, truth):
        vals = np.rint(np.clip(v, -1024, 3071)).astype(np.int16)
        out.append(Volume(voxels=vals, spacing=vol.spacing, origin=vol.origin, direction=vol.direction,
                          source=vol.source, info=dict(vol.info)))
    return out[0], out[1]
