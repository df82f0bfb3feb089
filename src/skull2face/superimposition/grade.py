"""The graded conclusion of a superimposition, with its thresholds stated.

The statistic is the residual SD at the face, in mm: ``s = sqrt(sum_l e_l^2 / (2 n - k))``
over the ``n`` landmark pairs, ``e_l`` each pair's reprojection error in mm at the landmark's
distance from the camera, ``k`` the camera's free parameters (6 for the pose, 7 with an
unknown focal length). Dividing by the degrees of freedom rather than by ``n`` keeps a fit of
few landmarks from looking better than it is (4 pairs and 7 unknowns leave one degree of
freedom: almost any skull fits them).

Grades, in the terms of forensic craniofacial superimposition (the MEPROCS consensus, Damas
et al. 2015, Forensic Science International 257: 504-508, grades support for "same person"):

=====================  ============================  ====================
grade                  residual SD at the face       needs at least
=====================  ============================  ====================
strong support         <= 1.5 mm                     6 landmark pairs
moderate support       <= 2.5 mm                     5 landmark pairs
limited support        <= 3.5 mm                     4 landmark pairs
inconsistent           > 3.5 mm                      (any)
=====================  ============================  ====================

A fit below a threshold but with too few pairs gets the grade its pairs allow. The thresholds
were chosen on the two bundled real heads (`benchmarks/superimpose_discrimination.py`, focal
length solved: the own skull at 0.7-3.4 mm, the other head's skull at 3.6-6.6 mm over ten
rendered photographs, yaw up to 35 degrees); two heads cannot calibrate them, and the margin
between the two groups there is small, so they are provisional. The mm scale itself follows from the
published tissue-thickness SDs (1-3 mm over the face's landmarks, Hona & Stephan 2024) plus
the placement error of a landmark (about 1-2 mm).

Superimposition can exclude a skull, or support that skull and photo belong to one person; it
never makes an identification (`CAVEAT`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

GRADES = ("strong support", "moderate support", "limited support", "inconsistent")
THRESHOLDS_MM = (1.5, 2.5, 3.5)
"""Upper bounds of the residual SD at the face (mm) for strong, moderate and limited support."""
MIN_PAIRS = (6, 5, 4)
"""Fewest landmark pairs for strong, moderate and limited support."""
CAVEAT = ("Craniofacial superimposition supports or excludes; it never makes an identification. A consistent "
          "result means this skull cannot be excluded as this person's, on these landmarks; identification "
          "needs independent evidence (DNA, dental records, medical implants).")


def residual_sd_mm(errors_mm: Any, n_params: int) -> float:
    """``sqrt(sum e^2 / (2 n - n_params))`` (mm); inf when the pairs leave no degree of freedom."""
    e = np.asarray(errors_mm, dtype=np.float64).reshape(-1)
    dof = 2 * len(e) - int(n_params)
    return float(np.sqrt(np.sum(e * e) / dof)) if dof > 0 else float("inf")


def grade(errors_mm: Any, focal_known: bool) -> dict[str, Any]:
    """The graded conclusion of a fit.

    Parameters
    ----------
    errors_mm : array_like, shape (n,)
        Reprojection error of each landmark pair, mm at the face.
    focal_known : bool
        Whether the focal length was given (6 free camera parameters) or solved (7).

    Returns
    -------
    dict
        ``grade`` (one of `GRADES`), ``consistent`` (bool), ``residual_sd_mm``, ``pairs``,
        ``degrees_of_freedom``, ``rule`` (the thresholds in words) and ``caveat``.
    """
    e = np.asarray(errors_mm, dtype=np.float64).reshape(-1)
    k = 6 if focal_known else 7
    s = residual_sd_mm(e, k)
    chosen = GRADES[-1]
    for g, limit, need in zip(GRADES, THRESHOLDS_MM, MIN_PAIRS):
        if s <= limit and len(e) >= need:
            chosen = g
            break
    rule = "; ".join(f"{g}: residual SD <= {t} mm with >= {m} pairs" for g, t, m in zip(GRADES, THRESHOLDS_MM,
                                                                                         MIN_PAIRS))
    return {"grade": chosen, "consistent": chosen != GRADES[-1], "residual_sd_mm": round(s, 3),
            "rms_mm": round(float(np.sqrt(np.mean(e * e))), 3) if len(e) else None, "pairs": int(len(e)),
            "degrees_of_freedom": int(2 * len(e) - k), "rule": rule + f"; otherwise {GRADES[-1]}",
            "caveat": CAVEAT}


__all__ = ["CAVEAT", "GRADES", "MIN_PAIRS", "THRESHOLDS_MM", "grade", "residual_sd_mm"]
