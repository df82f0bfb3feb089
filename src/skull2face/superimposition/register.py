"""Registration of a skull to a face photograph: soft-tissue points, the camera, the residuals.

`soft_tissue_points`
    The 3D points a photograph's landmarks should match: each skull landmark with a skin
    partner moved out along its outward bone normal by its published mean thickness
    (`skull2face.statistics.face_model.landmark_targets`, Hona & Stephan 2024), with the SD.
`solve_camera`
    The pinhole camera (pose, and the focal length when it is not known) that projects those
    points onto the photo's landmarks: OpenCV's SQPnP solver (Terzakis & Lourakis, ECCV 2020)
    at each focal length of a 1-D logarithmic search, the best refined by Levenberg-Marquardt
    (``cv2.solvePnPRefineLM``), then pose and focal length together by a robust (Huber) least
    squares (``scipy.optimize.least_squares``), so that one badly placed landmark does not
    drag the camera.
`residuals`
    Per landmark: the reprojection error in pixels and in mm at the landmark's own distance
    from the camera (``px * z / f``).

Coordinates: world = the skull's input coordinates, mm; pixels as `skull2face.geometry.camera`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..geometry.camera import Camera

FOCAL_SEARCH = (0.4, 20.0, 48)
"""Focal lengths tried when unknown: from 0.4 to 20 times the image diagonal, 48 steps,
logarithmic. A 35 mm-equivalent lens of 17 mm .. 860 mm (diagonal 43.3 mm): every phone, compact
and portrait lens; beyond it the picture is practically orthographic and the fit no longer
depends on the focal length."""
HUBER_MM = 3.0
"""Residuals above this (mm at the face) count linearly, not squared, in the robust refinement:
about the SD of the published tissue thickness over the face's landmarks (1-3 mm midline,
3 mm zygion; Hona & Stephan 2024) plus a landmark's placement error."""
MIN_POINTS = 4
"""Fewest landmark pairs a camera is solved from (pose 6 + focal 1 unknowns: 4 points give 8
equations; fewer leave the camera undetermined)."""


def soft_tissue_points(skull_vertices: Any, skull_faces: Any, skull_landmarks: Any,
                       centre: Any, *, table: Any = None) -> dict[str, tuple[np.ndarray, float]]:
    """Skin landmark name -> (3D point, mm; SD of its thickness, mm), as
    `skull2face.statistics.face_model.landmark_targets` (the one place this rule lives), with
    the thickness rows ``table`` (None: the bundled table)."""
    from ..statistics.face_model import landmark_targets

    return landmark_targets(skull_vertices, skull_faces, skull_landmarks, centre, table=table)


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # a dependency in pyproject.toml; say so plainly if absent
        raise ImportError("skull2face superimpose needs OpenCV: pip install opencv-python-headless") from exc
    return cv2


def _huber_cost(r: np.ndarray, scale: float) -> float:
    """Sum of the Huber function of the residual lengths (px) at ``scale`` px."""
    a = np.linalg.norm(r.reshape(-1, 2), axis=1)
    return float(np.sum(np.where(a <= scale, a * a, 2.0 * scale * a - scale * scale)))


def _pnp(obj: np.ndarray, img: np.ndarray, k: np.ndarray, scale_px: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Best pose at a fixed K: (rvec, tvec, Huber cost at ``scale_px``) or None when no pose puts
    the points in front of the camera.

    Candidates: SQPnP on all points, and (6 points or more) RANSAC (``cv2.solvePnPRansac``,
    inliers within 2 ``scale_px``) so that a misplaced landmark cannot pull the start into a
    wrong minimum; each is refined by Levenberg-Marquardt on its inliers.
    """
    cv2 = _cv2()
    cands = []
    try:
        ok, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)
        if ok:
            cands.append(cv2.solvePnPRefineLM(obj, img, k, None, rvec, tvec))
        if len(obj) >= 6:
            ok, rvec, tvec, inl = cv2.solvePnPRansac(obj, img, k, None, reprojectionError=2.0 * scale_px,
                                                     iterationsCount=200, confidence=0.999)
            if ok and inl is not None and len(inl) >= MIN_POINTS:
                i = inl.reshape(-1)
                cands.append(cv2.solvePnPRefineLM(obj[i], img[i], k, None, rvec, tvec))
    except cv2.error:
        pass
    best = None
    for rvec, tvec in cands:
        z = (cv2.Rodrigues(rvec)[0] @ obj.T + tvec.reshape(3, 1))[2]
        if np.any(z <= 0):
            continue
        proj, _ = cv2.projectPoints(obj, rvec, tvec, k, None)
        cost = _huber_cost(proj.reshape(-1, 2) - img, scale_px)
        if best is None or cost < best[2]:
            best = (rvec.reshape(3), tvec.reshape(3), cost)
    return best


def _k(f: float, c: tuple[float, float]) -> np.ndarray:
    return np.array([[f, 0.0, c[0]], [0.0, f, c[1]], [0.0, 0.0, 1.0]])


def solve_camera(object_points: Any, image_points: Any, size: tuple[int, int],
                 focal_px: float | None = None, info: dict | None = None) -> Camera:
    """The camera that projects 3D points onto their 2D partners.

    Parameters
    ----------
    object_points : array_like, shape (n, 3), mm
        World points (n >= `MIN_POINTS`, not all on one line).
    image_points : array_like, shape (n, 2), px
        Their pixel positions ``(u, v)`` in the photo.
    size : (int, int)
        Photo width and height, px; the principal point is the image centre.
    focal_px : float, optional
        Known focal length in px; None: searched (`FOCAL_SEARCH`) and refined.
    info : dict, optional
        Filled with the solve's record (focal lengths tried, the search's curve minimum, robust
        weights).

    Returns
    -------
    Camera

    Raises
    ------
    ValueError
        Too few points, or no focal length gives a camera in front of the points.
    """
    cv2 = _cv2()
    from scipy.optimize import least_squares

    obj = np.ascontiguousarray(np.asarray(object_points, dtype=np.float64).reshape(-1, 3))
    img = np.ascontiguousarray(np.asarray(image_points, dtype=np.float64).reshape(-1, 2))
    if len(obj) != len(img) or len(obj) < MIN_POINTS:
        raise ValueError(f"need at least {MIN_POINTS} landmark pairs to solve the camera, got {len(obj)}")
    w, h = (int(s) for s in size)
    c = ((w - 1) / 2.0, (h - 1) / 2.0)
    diag = float(np.hypot(w, h))
    if focal_px is not None:
        focals = np.array([float(focal_px)])
    else:
        lo, hi, n = FOCAL_SEARCH
        focals = diag * np.geomspace(lo, hi, int(n))
    # px per mm at the face, from the spread of the points in the photo and in space (no camera
    # needed): the Huber scale of the search; the refinement recomputes it from the camera
    spread_px = float(np.sqrt(np.sum(np.var(img, axis=0))))
    spread_mm = float(np.sqrt(np.sum(np.var(obj, axis=0))))
    search_scale = HUBER_MM * spread_px / max(spread_mm, 1e-9)
    best = None
    for f in focals:
        sol = _pnp(obj, img, _k(f, c), search_scale)
        if sol is not None and (best is None or sol[2] < best[3]):
            best = (f, sol[0], sol[1], sol[2])
    if best is None:
        raise ValueError("no camera puts the landmarks in front of it: are the photo's landmarks mirrored?")
    f0, rvec, tvec, cost0 = best
    z_mean = float(np.mean((cv2.Rodrigues(rvec)[0] @ obj.T + tvec.reshape(3, 1))[2]))
    scale_px = HUBER_MM * f0 / z_mean  # HUBER_MM at the face, in px
    free_f = focal_px is None

    def unpack(x):
        return x[:3], x[3:6], (float(np.exp(x[6])) if free_f else float(focal_px))

    def fun(x):
        r, t, f = unpack(x)
        proj, _ = cv2.projectPoints(obj, r, t, _k(f, c), None)
        return (proj.reshape(-1, 2) - img).reshape(-1)

    x0 = np.concatenate([rvec, tvec] + ([[np.log(f0)]] if free_f else []))
    if free_f:
        lo_b = np.full(7, -np.inf)
        hi_b = np.full(7, np.inf)
        lo_b[6], hi_b[6] = np.log(focals[0]), np.log(focals[-1])
        x0[6] = np.clip(x0[6], lo_b[6] + 1e-9, hi_b[6] - 1e-9)
        bounds = (lo_b, hi_b)
    else:
        bounds = (-np.inf, np.inf)
    res = least_squares(fun, x0, loss="cauchy", f_scale=scale_px, bounds=bounds, x_scale="jac")
    r, t, f = unpack(res.x)
    cam = Camera(f, (w, h), cv2.Rodrigues(r)[0], t, c)
    if np.any(cam.to_camera(obj)[:, 2] <= 0):  # the refinement may not flip the scene behind the camera
        cam = Camera(f0, (w, h), cv2.Rodrigues(rvec)[0], tvec, c)
    if info is not None:
        info.update({"focal_known": not free_f, "focal_search_px": [round(float(focals[0]), 1),
                                                                     round(float(focals[-1]), 1), len(focals)],
                     "search_best_focal_px": round(float(f0), 1), "search_best_huber_cost": round(cost0, 3),
                     "huber_px": round(float(scale_px), 3), "refine_status": int(res.status)})
    return cam


def residuals(camera: Camera, points: Mapping[str, Any], photo: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per landmark: reprojection error in px and in mm at the point's distance from the camera.

    Parameters
    ----------
    camera : Camera
    points : mapping of str to array_like (3,), world mm
    photo : mapping of str to array_like (2,), px
        Only names in both count.

    Returns
    -------
    dict of str to dict
        ``{"px": float, "mm": float, "dx_px": float, "dy_px": float, "distance_mm": float}``.
    """
    out = {}
    for name in points:
        if name not in photo:
            continue
        p = np.asarray(points[name], dtype=np.float64).reshape(1, 3)
        uv = camera.project(p)[0]
        d = uv - np.asarray(photo[name], dtype=np.float64)
        z = float(camera.to_camera(p)[0, 2])
        px = float(np.hypot(*d))
        out[name] = {"px": px, "mm": px * z / camera.focal_px, "dx_px": float(d[0]), "dy_px": float(d[1]),
                     "distance_mm": z}
    return out


def rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (degrees) of the rotation between two rotation matrices (3, 3)."""
    c = (np.trace(np.asarray(a).T @ np.asarray(b)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


__all__ = ["FOCAL_SEARCH", "HUBER_MM", "MIN_POINTS", "residuals", "rotation_error_deg", "soft_tissue_points",
           "solve_camera"]
