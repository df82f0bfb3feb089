"""Midline rules that skull and face share: nasion and glabella above it, the chin
(pogonion, menton, gnathion), and the user's landmarks, which always win.

All work on the midline profile (`.profile`) in the working frame.
"""

from __future__ import annotations

import numpy as np

from .profile import _dot, _found, _Profile, _prominence, _STEP
from .work import _missing, _Result

# Typical adult midline dimensions (mm) that place the search windows, generous on purpose:
# glabella 10-20 mm above nasion; nasion-menton (face height) 110-130 mm, pogonion
# 10-15 mm above menton.
_GLABELLA_ABOVE = (3.0, 30.0)
_CHIN_BELOW_N = 150.0       # lowest the chin is searched for below nasion
_CHIN_AHEAD = 45.0          # and furthest behind nasion (a flexed head, a retruded chin;
                            # the neck lies further back)
_FACE_HEIGHT_MIN = 80.0     # the chin lies at least this far below nasion


def _use_given(res: dict[str, _Result], name: str, given: dict[str, np.ndarray]) -> None:
    """Replace a detection by the user's landmark, which always wins."""
    if name in given:
        res[name] = _Result(np.asarray(given[name], dtype=np.float64), "high", "given by the user", "given")



def _nasion_and_glabella(prof: _Profile, ks: np.ndarray, given: dict[str, np.ndarray], names_: tuple[str, str],
                         half: float, grades: tuple[float, float], where: str, why: str) -> dict[str, _Result]:
    """Nasion and glabella (names ``names_``) on the outline; the user's landmarks win.

    Nasion is the deepest notch (`_Profile.concavity` over +-``half`` mm of arc) among the
    outline samples ``ks``, graded "high" / "medium" / "low" by the depth thresholds
    ``grades`` (mm) and noted as lying ``where``; missing (with ``why``) if ``ks`` holds no
    sample. Glabella is then looked for above nasion (`_glabella`).
    """
    name_n, name_g = names_
    res: dict[str, _Result] = {}
    conc = prof.concavity(half)
    ks = ks[np.isfinite(conc[ks])]
    if len(ks):
        k = int(ks[np.nanargmax(conc[ks])])
        depth = conc[k]
        res[name_n] = _found(prof, k, "high" if depth > grades[0] else "medium" if depth > grades[1] else "low",
                             f"deepest notch of the midline outline {where} ({depth:.1f} mm "
                             f"behind the chord over +-{half:.0f} mm)")
    else:
        res[name_n] = _missing(why)
    _use_given(res, name_n, given)
    n = res[name_n].point

    res[name_g] = _glabella(prof, n, name_g) if n is not None else _missing("needs nasion")
    _use_given(res, name_g, given)
    return res


def _glabella(prof: _Profile, nasion: np.ndarray, name: str) -> _Result:
    """Most prominent midline point 3-30 mm above nasion, measured against the chord from
    nasion to the outline 35 mm above it (or to the highest outline point below a cut)."""
    ks = prof.span(nasion[1] + _GLABELLA_ABOVE[0], nasion[1] + _GLABELLA_ABOVE[1] + 5.0)
    if len(ks) < 3:
        return _missing("no midline outline 3-30 mm above nasion (cut off by the scan?)")
    top = ks[-1]
    k = _prominence(prof, ks[prof.y[ks] <= nasion[1] + _GLABELLA_ABOVE[1]], nasion[1:],
                    np.array([prof.y[top], prof.z[top]]))
    at_cut = prof.cut_within(prof.y[k], prof.y[k] + 6.0, prof.z[k] - 20.0)
    return _found(prof, k, "low" if at_cut else "medium",
                  "most prominent midline point 3-30 mm above nasion (in front of the chord from nasion "
                  "to the forehead 35 mm up)" + ("; the scan ends just above it" if at_cut else ""))


def _chin(prof: _Profile, res: dict[str, _Result], given: dict[str, np.ndarray], surface: str,
          top: float) -> dict[str, _Result]:
    """Pogonion, menton and gnathion on the chin of the outline, or why they are missing.

    The chin is first located as the most anterior-inferior point (furthest along the 45
    degree down-and-forward direction) of the outline within `_CHIN_AHEAD` mm behind nasion
    and below ``top`` (the upper teeth or the upper lip). Menton is the lowest chin point
    near it; pogonion the chin point standing furthest in front of the chord from menton to
    the outline 30 mm above menton (the mental protuberance over the symphysis, whatever the
    pitch and whether the mouth is open); gnathion the chin point furthest along the bisector
    of "across the nasion-pogonion line" and "down", i.e. midway between the two.
    """
    skull = surface == "skull"
    names_ = ("Pog", "Gn") if skull else ("pog'", "me", "gn'")
    nasion = res["N" if skull else "n"].point
    if nasion is None:
        return {n: _missing("needs nasion") for n in names_}
    lowest = nasion[1] - _CHIN_BELOW_N
    pts = prof.pts
    run = _chin_run(prof, lowest, top, nasion[2] - _CHIN_AHEAD)
    corner = None
    if run is not None:
        y_lo, y_hi, z_lo = prof.y[run].min(), prof.y[run].max(), np.nanmin(prof.z[run])
        zone = pts[(pts[:, 0] >= y_lo - 20.0) & (pts[:, 0] <= y_hi) & (pts[:, 1] >= z_lo - 10.0)]
        corner = zone[np.argmax(zone[:, 1] - zone[:, 0])]
    if corner is None or corner[0] > nasion[1] - _FACE_HEIGHT_MIN:
        cut_y = prof.highest_cut(nasion[1] - 20.0, nasion[2] - _CHIN_AHEAD)
        if cut_y is not None:
            why = (f"the scan ends {nasion[1] - cut_y:.0f} mm below nasion, above the chin "
                   f"(the chin lies 100-130 mm below nasion)")
        else:
            what = "bone" if skull else "surface"
            why = (f"no {what} on the midline 80-150 mm below nasion: "
                   + ("the mandible is absent" if skull else "the face ends above the chin"))
        return {n: _missing(why) for n in names_}
    out: dict[str, _Result] = {}
    name_pog, name_gn = names_[0], names_[-1]
    if prof.near_lid(corner[0], corner[1], 8.0):
        return {n: _missing("the scan ends under the chin: its outline is incomplete") for n in names_}

    me, me_note, me_conf = _menton(prof, corner)
    if me is None:
        return {n: _missing(me_note) for n in names_}
    if not skull:
        out["me"] = _Result(me, me_conf, me_note)
        _use_given(out, "me", given)
        me = out["me"].point

    ks = prof.span(me[1] + 1.0, min(me[1] + 30.0, top))
    if len(ks) < 3:
        return {**out, **{n: _missing("no chin outline above menton") for n in (name_pog, name_gn)}}
    k = _prominence(prof, ks[prof.y[ks] <= me[1] + 25.0], me[1:], np.array([prof.y[ks[-1]], prof.z[ks[-1]]]))
    out[name_pog] = _found(prof, k, "medium", "most prominent chin point: furthest in front of the chord from "
                                              "menton to the outline 30 mm above it")
    _use_given(out, name_pog, given)
    pog = out[name_pog].point
    # gnathion: furthest along the bisector of the chin's two extreme directions
    facial = pog[1:] - nasion[1:]
    ahead = np.array([-facial[1], facial[0]]) / np.linalg.norm(facial)  # (y, z), anterior
    if ahead[1] < 0:
        ahead = -ahead
    bis = ahead + np.array([-1.0, 0.0])
    bis /= np.linalg.norm(bis)
    arc = pts[(pts[:, 0] <= pog[1] + 0.5) & (pts[:, 0] >= me[1] - 0.5) & (pts[:, 1] >= me[2] - 0.5)]
    if len(arc):
        g = arc[np.argmax(_dot(arc, bis))]
        out[name_gn] = _Result(np.array([0.0, g[0], g[1]]), "medium",
                               "chin point furthest along the bisector of the nasion-pogonion normal and "
                               "'down' (midway between pogonion and menton)")
        _use_given(out, name_gn, given)
    else:
        out[name_gn] = _missing("no chin outline between pogonion and menton")
    return out


def _chin_run(prof: _Profile, lowest: float, top: float, z_min: float) -> np.ndarray | None:
    """Samples of the anterior outline that belong to the chin, or None.

    The outline between ``lowest`` and ``top`` (in front of ``z_min``) is split where it
    jumps back by more than 8 mm or has a gap of more than 3 mm; the chin is the most
    anterior piece at least 10 mm tall. This keeps the cervical vertebrae or the neck, which
    lie far behind the chin, out of the search even when the pitch brings them low and
    forward.
    """
    ks = prof.span(lowest, top)
    ks = ks[prof.z[ks] >= z_min]
    if not len(ks):
        return None
    breaks = np.flatnonzero((np.diff(ks) * _STEP > 3.0) | (np.abs(np.diff(prof.z[ks])) > 8.0)) + 1
    pieces = [p for p in np.split(ks, breaks) if (len(p) - 1) * _STEP >= 10.0]
    if not pieces:
        return None
    return max(pieces, key=lambda p: np.nanmax(prof.z[p]))


def _menton(prof: _Profile, corner: np.ndarray) -> tuple[np.ndarray | None, str, str]:
    """Lowest point of the chin near its anterior-inferior corner (2D y, z), on the slab's
    outline seen from the front and from below.

    Searched within 25 mm behind the corner, which covers the chin's underside but not the
    neck or hyoid. If the underside keeps descending to the back of that window (a flexed
    head, a full submental region), there is no distinct lowest point; the chin's turning
    point is taken instead: the point furthest below the chord from the corner to the
    window's lowest point.
    """
    pts = prof.pts
    pog = np.array([0.0, corner[0], corner[1]])
    sel = pts[(pts[:, 0] <= pog[1] + 5.0) & (pts[:, 0] >= pog[1] - 40.0) & (pts[:, 1] >= pog[2] - 25.0)
              & (pts[:, 1] <= pog[2] + 1.0)]
    if not len(sel):
        return None, "no chin outline below pogonion", "low"
    low = sel[np.argmin(sel[:, 0])]
    if low[1] > pog[2] - 22.0:
        return np.array([0.0, low[0], low[1]]), "lowest point of the chin on the midline section", "medium"
    # descending to the window's back: take the turning point of the outline instead
    chord = low - pog[1:]
    normal = np.array([chord[1], -chord[0]]) / np.linalg.norm(chord)  # down and forward
    t = sel[np.argmax(_dot(sel - pog[1:], normal))]
    return (np.array([0.0, t[0], t[1]]),
            "no distinct lowest chin point (the underside keeps descending backwards): turning point "
            "of the chin outline", "low")
