"""Face midline rules: pronasale (internal), nasion, glabella, subnasale, pogonion, menton,
gnathion (`_face_midline`), found on the midline profile (`.profile`) of the working frame.

The nose tip (`_nose_tip`) orients everything: nasion is the deepest notch above it,
subnasale the first clear notch below it, and the chin lies below the upper lip.
"""

from __future__ import annotations

import numpy as np

from .midline import _chin, _nasion_and_glabella, _use_given
from .profile import _found, _local_maxima, _plateau, _Profile
from .work import _front_map, _missing, _Result, _Work

# Typical adult soft-tissue midline dimensions (mm), after Farkas (Anthropometry of the Head
# and Face, 1994): nasion-pronasale 45-55, nasion above glabella by 10-20, pronasale-subnasale
# height 15-25, subnasale-menton 60-75 (pogonion 10-20 above menton).
_NOSE_BUMP = 2.0             # the nose tip stands this far (mm) in front of the chord over +-10 mm
_NOSE_NOTCH_BELOW = 25.0     # ...with the subnasal notch within this far below it
_NOSE_DROP = 5.0             # and the face 10 mm to its sides this far behind it
_NASION_ABOVE_PRN = (15.0, 70.0)
_SUBNASALE_BELOW_PRN = (2.0, 30.0)


def _nose_tip(prof: _Profile, work: _Work) -> int | None:
    """Index of pronasale on a face outline, or None.

    Candidates are bumps of the outline (>= `_NOSE_BUMP` in front of the chord over +-10 mm
    of arc) with a notch below them within `_NOSE_NOTCH_BELOW` mm: the nose overhangs the
    lip and the lips the mouth, while the chin recedes into the neck. Of these the nose is
    the narrow one: 10 mm to either side of its tip the face lies ~10 mm further back
    (measured 9.9 and 11.3 mm on the bundled CTs), while lips, chin and brow are broad
    (0.5-3.7 mm). The candidate with the largest such drop, at least `_NOSE_DROP`, wins.
    """
    conc = prof.concavity(10.0)
    bump = -conc
    ks = np.flatnonzero(np.isfinite(bump))
    cands = []
    for k in _local_maxima(bump, ks, _NOSE_BUMP):
        below = prof.span(prof.y[k] - _NOSE_NOTCH_BELOW, prof.y[k] - 1.0)
        below = below[np.isfinite(conc[below])]
        if len(below) and np.nanmax(conc[below]) >= _NOSE_BUMP:
            cands.append(k)
    if not cands:
        return None
    y_lo, y_hi = prof.y[cands].min(), prof.y[cands].max()
    rows = int(np.ceil(y_hi - y_lo)) + 3
    h, x, y = _front_map(work, (0.0, (y_lo + y_hi) / 2.0), (rows, 25))
    drops = []
    for k in cands:
        r = int(np.argmin(np.abs(y[:, 0] - prof.y[k])))
        side = h[r, np.abs(np.abs(x[r]) - 10.0) <= 1.0]
        drops.append(prof.z[k] - np.nanmean(side) if np.isfinite(side).any() else -np.inf)
    best = int(np.argmax(drops))
    if drops[best] < _NOSE_DROP:
        return None
    k0 = cands[best]
    return _plateau(bump, prof.span(prof.y[k0] - 5.0, prof.y[k0] + 5.0), tol=0.2)


def _face_midline(prof: _Profile, given: dict[str, np.ndarray], work: _Work) -> dict[str, _Result]:
    """prn (internal), n, g', sn, pog', me, gn' on the midline outline of a face."""
    res: dict[str, _Result] = {}
    k_prn = _nose_tip(prof, work)
    if k_prn is None:
        why = "no nose found on the midline outline"
        return {n: _missing(why) for n in ("n", "g'", "sn", "pog'", "me", "gn'")}
    res["prn"] = _found(prof, k_prn, "medium", "pronasale: the tip of the nose")
    prn_y = prof.y[k_prn]

    res.update(_nasion_and_glabella(prof, prof.span(prn_y + _NASION_ABOVE_PRN[0], prn_y + _NASION_ABOVE_PRN[1]),
                                    given, ("n", "g'"), 10.0, (2.0, 0.5), "between forehead and nose",
                                    "no midline outline above the nose"))

    conc6 = prof.concavity(6.0)
    ks = prof.span(prn_y - _SUBNASALE_BELOW_PRN[1], prn_y - _SUBNASALE_BELOW_PRN[0])
    notches = _local_maxima(conc6, ks, 1.5)
    if len(notches):
        k = int(notches.max())  # the highest clear notch below the tip: under the nose, not the mouth
        res["sn"] = _found(prof, k, "medium", f"first clear notch below the nose tip ({conc6[k]:.1f} mm deep)")
    else:
        ks = ks[np.isfinite(conc6[ks])]
        if len(ks) and not prof.cut_within(prn_y - _SUBNASALE_BELOW_PRN[1], prn_y, prof.z[k_prn] - 30.0):
            k = int(ks[np.nanargmax(conc6[ks])])
            res["sn"] = _found(prof, k, "low", "deepest point of the outline below the nose tip (no clear notch)")
        else:
            res["sn"] = _missing("no outline below the nose tip (the scan ends there?)")
    _use_given(res, "sn", given)
    sn = res["sn"].point

    # the chin search starts below the upper lip (subnasale-stomion is ~20 mm)
    top = (sn[1] - 15.0) if sn is not None else prn_y - 35.0
    res.update(_chin(prof, res, given, surface="face", top=top))
    return res
