"""Landmark names and definitions: the one place they are spelled out.

Skull (craniometric) landmarks follow Table 1 of the paper, face (cephalometric) landmarks
Table 2. Names are case-sensitive: capitalised names are on bone (``N`` is skull nasion),
lower-case names on skin (``n`` is skin nasion); a prime marks the soft-tissue twin of a bony
point (``g'`` over ``G``). Bilateral landmarks carry ``_L`` / ``_R`` for the *subject's*
left / right, so ``Zy_L`` is on the subject's left zygomatic arch whatever the view.

`resolve_name` turns the spellings people and tools actually use ("Nasion", "zygion_l",
"left zygion", "g_prime", "g’") into these canonical names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Surface = Literal["skull", "face"]
SURFACES: tuple[str, ...] = ("skull", "face")
SIDES: tuple[str, ...] = ("L", "R")


@dataclass(frozen=True)
class Landmark:
    """One landmark, with a side already chosen for bilateral ones.

    Parameters
    ----------
    name : str
        Canonical name, e.g. ``"N"``, ``"Zy_L"``, ``"go'_R"``.
    full_name : str
        Anatomical name, e.g. ``"Nasion"``.
    surface : {'skull', 'face'}
        Bone (craniometric) or skin (cephalometric) landmark.
    bilateral : bool
        True for paired landmarks; these exist once per side.
    side : {'L', 'R'} or None
        The subject's side for bilateral landmarks, None on the midline.
    definition : str
        How the point is located, after the paper's Tables 1 and 2.
    """

    name: str
    full_name: str
    surface: str
    bilateral: bool
    side: str | None
    definition: str

    @property
    def base(self) -> str:
        """The name without its side suffix (``"Zy_L"`` -> ``"Zy"``)."""
        return self.name[:-2] if self.side else self.name


# (abbreviation, full name, bilateral, definition, extra spellings of the full name)
_SKULL_TABLE = [
    ("Da", "Dacryon", True,
     "The point of junction of the frontal, maxillary and lacrimal bones on the medial wall "
     "of the orbit.", ()),
    ("Fmt", "Frontomalare temporale", True,
     "The most lateral point of the junction of the frontal and zygomatic bones.",
     ("frontomalar temporale", "frontomalar tempora", "frontomalare", "frontomalar",
      "frontomalare temporal")),
    ("G", "Glabella", False,
     "The most prominent point between the supraorbital ridges in the mid-sagittal plane.", ()),
    ("Gn", "Gnathion", False,
     "A constructed point midway between the most anterior (Pog) and most inferior (Me) "
     "points on the chin.", ()),
    ("Go", "Gonion", True,
     "The intersection of the tangents to the posterior margin of the ascending ramus and the "
     "mandibular base, or the most lateral point at the mandibular angle.", ()),
    ("N", "Nasion", False,
     "The midpoint of the suture between the frontal and the two nasal bones.", ()),
    ("Ns", "Nasospinale", False,
     "Where the line between the lower margins of the right and left nasal apertures crosses "
     "the mid-sagittal plane.", ("nasospinal",)),
    ("Pog", "Pogonion", False,
     "The most anterior point in the midline on the mental protuberance.", ()),
    ("Pr", "Prosthion", False,
     "The apex of the alveolus in the midline between the maxillary central incisors.", ()),
    ("Zy", "Zygion", True, "The most lateral point on the zygomatic arch.", ()),
]

_FACE_TABLE = [
    ("al", "Alare", True, "The most lateral point on the alar contour.", ("alar",)),
    ("en", "Endocanthion", True,
     "The point at the inner commissure (medial canthus) of the palpebral fissure.", ()),
    ("g'", "Glabella", False,
     "In the midline, the most prominent point between the eyebrows.", ()),
    ("gn'", "Gnathion", False,
     "The point on the soft-tissue chin midway between pog' and me.", ()),
    ("go'", "Gonion", True,
     "The most lateral point of the jawline at the mandibular angle.", ()),
    ("me", "Menton", False,
     "The lowest point on the mid-sagittal plane of the soft-tissue chin.", ()),
    ("n", "Nasion", False,
     "In the midline, the point of maximum concavity between the nose and forehead; frontally, "
     "the midpoint of a tangent between the right and left superior palpebral folds.", ()),
    ("pog'", "Pogonion", False, "The most anterior point of the soft-tissue chin.", ()),
    ("sn", "Subnasale", False,
     "The midpoint of the columella base, where the lower border of the nasal septum meets the "
     "upper lip.", ()),
    ("t", "Tragion", True,
     "The point in the notch just above the tragus of the ear, 1 to 2 mm below the spine of "
     "the helix.", ()),
    ("zy'", "Zygion", True,
     "The most lateral point of the cheek (zygomaticomalar) region.", ()),
]


def _expand(table, surface: str) -> dict[str, Landmark]:
    out: dict[str, Landmark] = {}
    for abbr, full, bilateral, definition, _extra in table:
        if bilateral:
            for side in SIDES:
                name = f"{abbr}_{side}"
                out[name] = Landmark(name, full, surface, True, side, definition)
        else:
            out[abbr] = Landmark(abbr, full, surface, False, None, definition)
    return out


SKULL: dict[str, Landmark] = _expand(_SKULL_TABLE, "skull")
"""Skull (craniometric) landmarks by canonical name, bilateral ones expanded to ``_L``/``_R``."""

FACE: dict[str, Landmark] = _expand(_FACE_TABLE, "face")
"""Face (cephalometric) landmarks by canonical name, bilateral ones expanded to ``_L``/``_R``."""

ALL: dict[str, Landmark] = {**SKULL, **FACE}
"""Every landmark by canonical name; skull and face names never collide (case and primes)."""

BONE_TO_SKIN: dict[str, str] = {
    "G": "g'",
    "N": "n",
    "Gn": "gn'",
    "Go_L": "go'_L",
    "Go_R": "go'_R",
    "Pog": "pog'",
    "Zy_L": "zy'_L",
    "Zy_R": "zy'_R",
    # the paper pairs the bony nasal-aperture midpoint with the skin point under the nose
    "Ns": "sn",
}
"""Skull landmark -> the face landmark over it (its soft-tissue counterpart)."""

TISSUE_ROW: dict[str, str] = {
    "G": "g",
    "N": "n",
    "Ns": "ss",     # stand-in: subspinale lies just below nasospinale
    "Pr": "pr",
    "Pog": "pg",
    "Gn": "gn",
    "Go_L": "go", "Go_R": "go",
    "Zy_L": "zy", "Zy_R": "zy",
    # stand-ins: the pooled table has no value for these, mid-supraorbital is the nearest
    "Da_L": "mso", "Da_R": "mso",
    "Fmt_L": "mso", "Fmt_R": "mso",
}
"""Skull landmark -> ``bone_landmark`` row of the soft-tissue thickness table
(``skull2face.anatomy.tissue``). The table itself records the same mapping in its
``paper_table1_landmark`` column; the tests check that the two agree."""


def surface_names(surface: str | None = None) -> list[str]:
    """Canonical names on one surface (or all), in table order.

    Parameters
    ----------
    surface : {'skull', 'face'} or None
    """
    return list(_by_surface(surface))


def _by_surface(surface: str | None) -> dict[str, Landmark]:
    if surface is None:
        return ALL
    if surface == "skull":
        return SKULL
    if surface == "face":
        return FACE
    raise ValueError(f"surface must be 'skull', 'face' or None, not {surface!r}")


class UnknownLandmarkError(KeyError):
    """A label that does not name exactly one landmark.

    A `KeyError` whose message reads well (plain `KeyError` quotes its message).

    Attributes
    ----------
    raw : str
        The label as given.
    reason : str
        Why it was not resolved (unknown, ambiguous, side missing, ...).
    valid : list of str
        The canonical names that would have been accepted.
    """

    def __init__(self, raw: str, reason: str, valid: list[str]):
        self.raw = raw
        self.reason = reason
        self.valid = valid
        super().__init__(f"{reason}; valid names: {', '.join(valid)}")

    def __str__(self) -> str:
        return self.args[0]


# Apostrophe look-alikes that editors and spreadsheets substitute for the prime.
_PRIMES = "\u2019\u2018\u00b4\u2032`"
_SIDE_WORDS = {"l": "L", "left": "L", "lt": "L", "r": "R", "right": "R", "rt": "R"}
# Words that say "the soft-tissue version of": g_prime, g_soft, soft tissue glabella, skin nasion.
_SOFT_WORDS = {"prime", "soft", "skin", "tissue", "softtissue"}
_SPLIT = re.compile(r"[\s_\-.,;:()\[\]/]+")


def _key(text: str) -> str:
    return re.sub(r"[\s_\-.]+", "", text.lower())


def _build_spellings() -> dict[str, list[tuple[str, str, bool]]]:
    """full-name key -> [(surface, abbreviation, bilateral)]"""
    out: dict[str, list[tuple[str, str, bool]]] = {}
    for surface, table in (("skull", _SKULL_TABLE), ("face", _FACE_TABLE)):
        for abbr, full, bilateral, _definition, extra in table:
            for spelling in (full, *extra):
                out.setdefault(_key(spelling), []).append((surface, abbr, bilateral))
    return out


_FULL_NAMES = _build_spellings()
_ABBREVIATIONS = {"skull": [(a, b) for a, _f, b, _d, _e in _SKULL_TABLE],
                  "face": [(a, b) for a, _f, b, _d, _e in _FACE_TABLE]}


def _parse(raw: str) -> tuple[str, bool, str | None, int]:
    """Split a label into (base, soft-tissue flag, side, number of side words)."""
    tokens = [t for t in _SPLIT.split(raw) if t]
    soft = False
    sides: list[str] = []
    rest: list[str] = []
    for tok in tokens:
        if tok.endswith("'"):
            soft = True
            tok = tok.rstrip("'")
            if not tok:
                continue
        low = tok.lower()
        if low in _SIDE_WORDS:
            sides.append(_SIDE_WORDS[low])
        elif low in _SOFT_WORDS:
            soft = True
        else:
            rest.append(tok)
    side = sides[0] if len(set(sides)) == 1 else None
    return "".join(rest), soft, side, len(sides)


def _abbreviation_matches(surfaces, base: str, soft: bool, case_sensitive: bool,
                          prime_required: bool) -> list[tuple[str, str, bool]]:
    """Landmarks whose abbreviation ``base`` spells, as (surface, abbr, bilateral)."""
    found = []
    for surface in surfaces:
        if soft and surface == "skull":
            continue
        for abbr, bilateral in _ABBREVIATIONS[surface]:
            bare = abbr.rstrip("'")
            if prime_required and bare != abbr and not soft:
                continue
            same = base == bare if case_sensitive else base.lower() == bare.lower()
            if same:
                found.append((surface, abbr, bilateral))
    return found


def _full_name_matches(surfaces, base: str, soft: bool) -> list[tuple[str, str, bool]]:
    return [(surf, abbr, bilateral) for surf, abbr, bilateral in _FULL_NAMES.get(_key(base), [])
            if surf in surfaces and not (soft and surf == "skull")]


def resolve_name(raw: str, surface: str | None = None) -> str:
    """Map a user's spelling of a landmark to its canonical name.

    Accepted, in this order: the canonical name itself (``"Zy_L"``, ``"g'"``); within the given
    surface, any capitalisation of the abbreviation (``"n"`` on the skull is ``"N"``) and, on
    the face, the abbreviation without its prime (``"pog"`` -> ``"pog'"``); full anatomical names
    (``"Nasion"``, ``"Frontomalare temporale"``); sides as a suffix or prefix word in any case
    (``"zygion_l"``, ``"Zy_left"``, ``"Zy L"``, ``"left zygion"``); and soft-tissue marks
    (``"g_prime"``, ``"g_soft"``, ``"soft tissue glabella"``, typographic primes ``’``).

    Parameters
    ----------
    raw : str
        The label as written in a file or typed by a user.
    surface : {'skull', 'face'} or None
        Which surface the label is on. With None only canonical names and spellings that name
        one landmark on either surface are accepted, and case tells bone from skin:
        ``"nasion"`` then fails (``N`` or ``n``?), while ``"subnasale"``, ``"g_prime"`` and
        ``"Zy L"`` resolve (to ``sn``, ``g'`` and ``Zy_L``).

    Returns
    -------
    str
        The canonical name, a key of `ALL`.

    Raises
    ------
    UnknownLandmarkError
        (a `KeyError`) if the label names no landmark, or more than one; the message says
        which and lists the valid names.
    """
    valid_set = _by_surface(surface)
    valid = list(valid_set)
    if not isinstance(raw, str):
        raise UnknownLandmarkError(str(raw), f"landmark label {raw!r} is not text", valid)
    text = raw.strip()
    for ch in _PRIMES:
        text = text.replace(ch, "'")
    if text in valid_set:
        return text
    if not text:
        raise UnknownLandmarkError(raw, "empty landmark label", valid)

    base, soft, side, n_side_words = _parse(text)
    if n_side_words and side is None:
        raise UnknownLandmarkError(raw, f"landmark label {raw!r} names both sides", valid)
    if surface is None:
        # With no surface to go by, case is what tells bone (N) from skin (n), and a face name
        # that carries a prime (g') must be written with one; other case slips are accepted
        # only where they cannot be misread ("Me" is the skin menton: the skull has none).
        matches = (_abbreviation_matches(SURFACES, base, soft, True, True)
                   or _abbreviation_matches(SURFACES, base, soft, False, True))
    else:
        matches = _abbreviation_matches((surface,), base, soft, False, False)
    if not matches:
        matches = _full_name_matches(SURFACES if surface is None else (surface,), base, soft)
    if not matches:
        where = f" on the {surface}" if surface else ""
        raise UnknownLandmarkError(raw, f"{raw!r} is not a known landmark{where}", valid)
    if len(matches) > 1:
        options = " or ".join(abbr for _s, abbr, _b in matches)
        hint = "say which surface, or use the canonical name" if surface is None \
            else "use the canonical name"
        raise UnknownLandmarkError(raw, f"{raw!r} is ambiguous ({options}): {hint}", valid)
    _surf, abbr, bilateral = matches[0]
    if bilateral and side is None:
        raise UnknownLandmarkError(
            raw, f"{raw!r} is a paired landmark: say which side ({abbr}_L or {abbr}_R, the "
                 "subject's left or right)", valid)
    if not bilateral and side is not None:
        raise UnknownLandmarkError(raw, f"{raw!r} has a side but {abbr} is on the midline", valid)
    return f"{abbr}_{side}" if bilateral else abbr
