"""Reference maps of training heads, and moving a face map onto a target's render spec.

The data-driven methods (`skull2face.methods.mean_face`, `skull2face.methods.nearest_skull`)
work on the depth maps of a dataset's training pairs: `load_training_pairs` reads them and
`resample_to` puts any head-frame map on the target skull's pixel grid and render spec.

Heights are float32 head-frame z in mm (NaN off the surface). Torch-free.
"""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage

from ..geometry.depthmap import DepthMap, RenderSpec, load_depthmap


def resample_to(dm: DepthMap, spec: RenderSpec) -> DepthMap:
    """The same head-frame surface on another render spec's pixel grid, labelled with that spec.

    Heights are head-frame z, so a map moves between heads by relabelling: the output keeps
    the heights and takes ``spec`` (its frame maps the target's input coordinates to the head
    frame, so `depth_to_mesh` puts the surface into the target's input coordinates). When the
    grids (size, pitch, centre) agree this is an exact copy; otherwise heights are bilinearly
    interpolated where all four neighbours are valid.

    Parameters
    ----------
    dm : DepthMap
    spec : RenderSpec
        The target spec.

    Returns
    -------
    DepthMap
        With ``spec`` as its spec.
    """
    src = dm.spec
    if src.size == spec.size and src.mm_per_px == spec.mm_per_px and src.centre == spec.centre:
        return DepthMap(dm.height.copy(), dm.mask.copy(), spec)
    x, y = spec.xy_grid()
    rc = src.head_to_pixel(np.stack([x, y], axis=-1))
    coords = [rc[..., 0].ravel(), rc[..., 1].ravel()]
    h = np.where(dm.mask, dm.height, 0.0).astype(np.float64)
    val = ndimage.map_coordinates(h, coords, order=1, mode="constant", cval=0.0)
    m = ndimage.map_coordinates(dm.mask.astype(np.float64), coords, order=1, mode="constant", cval=0.0)
    ok = m > 1.0 - 1e-6
    out = np.where(ok, val, np.nan).reshape(spec.size).astype(np.float32)
    return DepthMap(out, np.isfinite(out), spec)


def load_training_pairs(dataset_dir: str | os.PathLike, split: str = "train",
                        real: bool | None = None) -> tuple[list[tuple[DepthMap, DepthMap]], list[str]]:
    """Paired (skull, face) maps of a dataset folder, for `nearest_skull_face` and `mean_face`.

    Parameters
    ----------
    dataset_dir : path-like
        A folder written by ``skull2face dataset build`` (see ``docs/dataset-format.md``).
    split : {'train', 'test'}
    real : bool or None
        Only real (True) or only synthetic (False) samples; None takes both.

    Returns
    -------
    pairs : list of (DepthMap, DepthMap)
        Loaded with `load_depthmap`, so each carries its own spec (and centre).
    ids : list of str
        The sample ids, in the same order.
    """
    from ..dataset.reader import load_manifest

    man = load_manifest(dataset_dir)
    pairs, ids = [], []
    for sample in man.select(split=split, kinds="paired", real=real):
        files = sample["files"]
        pairs.append((load_depthmap(man.root / files["skull"]), load_depthmap(man.root / files["face"])))
        ids.append(sample["id"])
    return pairs, ids


__all__ = ["load_training_pairs", "resample_to"]
