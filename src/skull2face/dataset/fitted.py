"""The face-model fit in a dataset: the thickness prior of the training heads, and each
sample's fitted face map (the base the skull2face generator corrects).

`training_prior` measures `skull2face.statistics.thickness_prior.ThicknessPrior` on the real
pairs of the training split only (never a test head), and the build saves it as ``prior.npz``.
`write_fit` fits the head model to one sample's skull with that prior
(`skull2face.statistics.skull_fit.fitted_face`) and saves ``maps/<id>_fit.npz``: the same fit
`skull2face predict` makes for a new skull with the prior stored in the model file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..geometry.depthmap import DepthMap, RenderSpec, save_depthmap
from ..geometry.frame import apply
from ..statistics.skull_fit import fitted_face
from ..statistics.thickness_prior import ThicknessPrior, build_prior

PRIOR_FILE = "prior.npz"
"""The dataset's thickness prior, relative to its folder."""


def training_prior(real_pairs: list[tuple[str, DepthMap, DepthMap, dict]], spec: RenderSpec,
                   weights: list | None = None) -> ThicknessPrior:
    """The thickness prior of real training heads.

    Parameters
    ----------
    real_pairs : list of (str, DepthMap, DepthMap, dict)
        ``(head name, skull map, face map, skull landmarks in INPUT coordinates)`` of each real
        training head; each map's spec frame takes its landmarks to the head frame.
    spec : RenderSpec
        The dataset's grid (size, mm_per_px, centre).
    weights : list of float or numpy.ndarray (H, W), optional
        Per head, its weight (`skull2face.statistics.thickness_prior.build_prior`).

    Returns
    -------
    ThicknessPrior
    """
    heads = []
    for name, skull, face, lms in real_pairs:
        pts = {k: apply(skull.spec.frame, np.asarray(v, np.float64)[None])[0]
               for k, v in lms.items() if np.all(np.isfinite(v))}
        heads.append((name, skull.height, face.height, pts))
    return build_prior(heads, spec, weights=weights)


def write_fit(out: Path, sid: str, skull_mesh: Any, skull_lms: dict, skull_map: DepthMap,
              prior: ThicknessPrior | None) -> tuple[str, dict]:
    """Fit the head model to one sample's skull and save its face map.

    Parameters
    ----------
    out : pathlib.Path
        The dataset folder.
    sid : str
        Sample id.
    skull_mesh : trimesh.Trimesh
        Input coordinates, mm.
    skull_lms : dict of str to array (3,)
        Input coordinates, mm.
    skull_map : DepthMap
        The sample's skull map (its spec is the output's).
    prior : ThicknessPrior or None

    Returns
    -------
    rel : str
        ``maps/<sid>_fit.npz``.
    info : dict
        The fit's record (dense term, |w|, landmark residuals, timings).
    """
    info: dict = {}
    fm = fitted_face(skull_mesh, skull_lms, skull_map.spec, prior=prior, skull_map=skull_map, info=info)
    save_depthmap(fm, out / "maps" / f"{sid}_fit", preview=False)
    return f"maps/{sid}_fit.npz", {"dense": info.get("dense"), "w_norm": info["fit"].get("w_norm"),
                                   "landmark_residual_mm": info["fit"].get("landmark_residual_mm")}


__all__ = ["PRIOR_FILE", "training_prior", "write_fit"]
