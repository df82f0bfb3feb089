"""Published facial soft-tissue thickness (FSTT): how deep the skin lies over each bony landmark.

The bundled table ``data/tissue/fstt_hona_stephan_2024.csv`` holds the pooled adult means and
standard deviations (mm) of

    Hona & Stephan (2024), International Journal of Legal Medicine 138: 519-535.

Its rows use the Caple & Stephan nomenclature (``g``, ``n``, ``pg``, ``zy``, ...). The last
column, ``paper_table1_landmark``, says which skull landmark of the paper's Table 1 each row
stands for; where the table has no value for a landmark, a neighbouring row stands in and the
column says so in brackets, e.g. ``Fmt/Da (stand-in: ...)``.

A run may use another population's table (``--thickness-table``: the same columns, optionally
``sex`` and ``age_group``), a build (``--build lean|average|heavy``: every mean -1 SD / as read /
+1 SD, the table having no BMI strata) and a sex and age group where the table has those
columns (`choose_table`, which refuses them for a table without: never a made-up adjustment).
The result is a `TissueTable`; its ``rows`` go wherever thickness is used (`thickness_for`).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import re
from dataclasses import dataclass, replace
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError, finite_number
from ..options import check_options, option
from . import names

COLUMNS = ("bone_landmark", "soft_landmark", "side", "mean_mm", "sd_mm", "paper_table1_landmark")
OPTIONAL_COLUMNS = ("sex", "age_group")
"""Columns a population table may add: ``sex`` (female, male, or pooled / empty: both) and
``age_group`` (free text such as ``18-29``; empty: every age)."""
SEXES = ("female", "male")
POOLED = "pooled"
BUILDS = {"lean": -1.0, "average": 0.0, "heavy": 1.0}
"""Build -> shift of every mean thickness, in the row's own SDs (mean -1 SD, mean, mean +1 SD).
Hona & Stephan 2024 pool adults of every body mass (no BMI strata), so a build is this shift
and nothing more: a lean or heavy face drawn from the table's own spread, not a measured BMI
group."""
MIN_BUILD_MM = 0.5
"""Floor of a shifted mean thickness, mm (chosen, not published: mean - 1 SD of a thin, wide
row would otherwise put the skin on or inside the bone)."""
#: Provenance of the bundled table, as a run records it (e.g. the thickness prior's ``table``).
TABLE_SOURCE = "Hona & Stephan 2024 (data/tissue/fstt_hona_stephan_2024.csv)"
_SIDES = ("midline", "bilateral")


@dataclass(frozen=True)
class Thickness:
    """One row of the thickness table.

    Parameters
    ----------
    bone : str
        Bony landmark in the table's nomenclature, e.g. ``"g"``.
    soft : str
        The skin landmark over it, e.g. ``"g'"``.
    side : {'midline', 'bilateral'}
    mean_mm : float
        Mean soft-tissue thickness, mm (> 0).
    sd_mm : float
        Standard deviation, mm (>= 0).
    paper_landmarks : tuple of str
        Skull landmark base names of the paper's Table 1 this row is used for (``("G",)``,
        ``("Fmt", "Da")``); empty for rows no Table 1 landmark uses.
    stand_in_note : str or None
        Why this row stands in for a landmark it does not measure exactly; None when it does.
    sex : {'female', 'male'} or None
        The sex the row was measured on; None: pooled (or a table without a ``sex`` column).
    age_group : str or None
        The age group the row was measured on; None: every age (or no ``age_group`` column).
    """

    bone: str
    soft: str
    side: str
    mean_mm: float
    sd_mm: float
    paper_landmarks: tuple[str, ...]
    stand_in_note: str | None
    sex: str | None = None
    age_group: str | None = None

    @property
    def is_stand_in(self) -> bool:
        """True when this row only approximates the landmarks it is used for."""
        return self.stand_in_note is not None


_PAPER_CELL = re.compile(r"^\s*([^()]*?)\s*(?:\((.*)\))?\s*$")


def _parse_paper_cell(cell: str, path: Path, line: int) -> tuple[tuple[str, ...], str | None]:
    match = _PAPER_CELL.match(cell or "")
    if match is None:
        raise InputError(path, f"line {line}: cannot read paper_table1_landmark {cell!r}")
    listed, note = match.group(1), match.group(2)
    bases = {lm.base for lm in names.SKULL.values()}
    landmarks = tuple(part.strip() for part in listed.split("/") if part.strip())
    unknown = [lm for lm in landmarks if lm not in bases]
    if unknown:
        raise InputError(path, f"line {line}: paper_table1_landmark names {', '.join(unknown)}, "
                               f"which are not skull landmarks ({', '.join(sorted(bases))})")
    note = note.strip() if note else None
    return landmarks, note or None


def load_table(path: str | os.PathLike | None = None) -> list[Thickness]:
    """Read a thickness table (by default the bundled Hona & Stephan 2024 one).

    Parameters
    ----------
    path : path-like or None
        A CSV with the columns of `COLUMNS` (and optionally those of `OPTIONAL_COLUMNS`); None
        reads the bundled table.

    Returns
    -------
    list of Thickness
        One per row, in file order.

    Raises
    ------
    InputError
        Naming the file and the line, if it is missing, not UTF-8 CSV, lacks a column, has a
        non-numeric or non-positive thickness, an unknown side or sex, or assigns a skull
        landmark to two rows of one stratum (sex and age group).
    """
    return _read_table(path)[0]


def _bundled_path() -> Path:
    from ..samples import path as sample_path

    return sample_path("tissue")


def _read_table(path: str | os.PathLike | None = None) -> tuple[list[Thickness], tuple[str, ...]]:
    """`load_table` and the header's column names."""
    path = Path(_bundled_path() if path is None else path)
    if not path.is_file():
        raise InputError(path, "thickness table not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(path, f"line {line}: thickness table is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[Thickness] = []
    claimed: dict[tuple[str, str | None, str | None], str] = {}
    try:
        header = tuple(reader.fieldnames or ())
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise InputError(path, f"line 1: thickness table lacks column(s) {', '.join(missing)}; "
                                   f"expected {','.join(COLUMNS)} (optional: {','.join(OPTIONAL_COLUMNS)})")
        present = COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if c in header)
        for raw in reader:
            row = _parse_row(raw, present, path, reader.line_num)
            for lm in row.paper_landmarks:
                key = (lm, row.sex, row.age_group)
                if key in claimed:
                    raise InputError(path, f"line {reader.line_num}: skull landmark {lm} is already assigned to "
                                           f"row {claimed[key]}{_stratum_words(row.sex, row.age_group, ' for ')}")
                claimed[key] = row.bone
            rows.append(row)
    except csv.Error as exc:
        raise InputError(path, f"line {reader.line_num}: thickness table is not valid CSV: {exc}") from None
    if not rows:
        raise InputError(path, "line 2: thickness table has no rows after its header")
    return rows, header


def _parse_row(raw: dict, present: tuple[str, ...], path: Path, line: int) -> Thickness:
    """One CSV row (``raw`` from `csv.DictReader`) as a `Thickness`, or an `InputError` naming the line."""
    if None in raw or any(raw.get(c) is None for c in present):
        raise InputError(path, f"line {line}: {'more' if None in raw else 'fewer'} fields than the header's")
    bone, soft, side = raw["bone_landmark"].strip(), raw["soft_landmark"].strip(), raw["side"].strip()
    if not bone or not soft:
        raise InputError(path, f"line {line}: bone_landmark and soft_landmark must be given")
    if side not in _SIDES:
        raise InputError(path, f"line {line}: side is {side!r}, expected one of {', '.join(_SIDES)}")
    mean = finite_number(raw["mean_mm"], path, f"line {line}: mean_mm")
    sd = finite_number(raw["sd_mm"], path, f"line {line}: sd_mm")
    if mean <= 0 or sd < 0:
        raise InputError(path, f"line {line}: thickness must be positive and its SD non-negative "
                               f"(got mean {mean} mm, SD {sd} mm)")
    paper, note = _parse_paper_cell(raw["paper_table1_landmark"], path, line)
    sex = (raw.get("sex") or "").strip().lower()
    if sex not in ("", POOLED, *SEXES):
        raise InputError(path, f"line {line}: sex is {sex!r}, expected one of {', '.join(SEXES + (POOLED,))} "
                               "or empty (pooled)")
    age = (raw.get("age_group") or "").strip()
    return Thickness(bone, soft, side, mean, sd, paper, note, sex if sex in SEXES else None, age or None)


@functools.lru_cache(maxsize=1)
def _bundled() -> tuple[Thickness, ...]:
    return tuple(load_table())


def thickness_for(skull_landmark_name: str, table: Sequence[Thickness] | None = None) -> Thickness:
    """The thickness row used for a skull landmark of the paper's Table 1.

    Parameters
    ----------
    skull_landmark_name : str
        Any spelling `names.resolve_name` accepts on the skull (``"G"``, ``"Zy_L"``,
        ``"dacryon right"``); both sides of a paired landmark share one row.
    table : sequence of Thickness or None
        Rows from `load_table`, or a `TissueTable`'s ``rows``; None uses the bundled table.

    Returns
    -------
    Thickness

    Raises
    ------
    KeyError
        If the name is not a skull landmark, or the table has no row for it.
    """
    base = names.SKULL[names.resolve_name(skull_landmark_name, "skull")].base
    rows = _bundled() if table is None else table
    for row in rows:
        if base in row.paper_landmarks:
            return row
    raise KeyError(f"the thickness table has no row for skull landmark {base}")


def _stratum_words(sex: str | None, age_group: str | None, lead: str = "") -> str:
    """``" for female, age group 18-29"``-like words for a stratum ('' for pooled, every age)."""
    parts = ([sex] if sex else []) + ([f"age group {age_group}"] if age_group else [])
    return lead + ", ".join(parts) if parts else ""


@dataclass(frozen=True)
class TissueSettings:
    """Which soft-tissue thickness: the population table, the build, sex and age group.

    Attributes
    ----------
    thickness_table : str or None
        A CSV with the bundled table's columns (`COLUMNS`, optionally `OPTIONAL_COLUMNS`);
        None: the bundled Hona & Stephan 2024 table (pooled adults).
    build : {'lean', 'average', 'heavy'}
        Every mean thickness shifted by -1, 0 or +1 of its SD (`BUILDS`).
    sex : {'female', 'male'} or None
        Rows of that sex (and pooled rows); needs a table with a ``sex`` column.
    age_group : str or None
        Rows of that age group (and rows for every age); needs an ``age_group`` column.
    """

    thickness_table: str | None = option(
        None, metavar="FILE", help="your population's thickness table: a CSV with the columns of the bundled one "
                                   "(bone_landmark,soft_landmark,side,mean_mm,sd_mm,paper_table1_landmark; optional "
                                   "sex, age_group); default: Hona & Stephan 2024, pooled adults")
    build: str = option("average", choices=tuple(BUILDS),
                        help="tissue thickness at the table's mean -1 SD (lean), mean (average) or +1 SD (heavy); "
                             "the bundled table has no BMI strata, so a build is this SD shift")
    sex: str | None = option(None, choices=SEXES,
                             help="rows of this sex (needs a --thickness-table with a sex column; the bundled table "
                                  "is pooled)")
    age_group: str | None = option(None, metavar="GROUP",
                                   help="rows of this age group, as the table's age_group column spells it (needs a "
                                        "--thickness-table with that column)")

    def __post_init__(self) -> None:
        check_options(self)


@dataclass(frozen=True)
class TissueTable:
    """The thickness rows a run uses, with their provenance (`choose_table`).

    Attributes
    ----------
    rows : tuple of Thickness
        One per row of the chosen stratum, means already shifted for the build (what
        `thickness_for` takes as ``table``).
    population : tuple of Thickness
        The same rows before the build's shift (the population's own means).
    source : str
        `TABLE_SOURCE` for the bundled table; else the file's path and sha256.
    build : str
        A key of `BUILDS`.
    sex, age_group : str or None
        The stratum chosen (None: pooled / every age).
    path, sha256 : str or None
        The user's table file and its hash (None for the bundled table).
    """

    rows: tuple[Thickness, ...]
    population: tuple[Thickness, ...]
    source: str
    build: str = "average"
    sex: str | None = None
    age_group: str | None = None
    path: str | None = None
    sha256: str | None = None

    @property
    def build_sd(self) -> float:
        """The build's shift in SDs (`BUILDS`)."""
        return BUILDS[self.build]

    def build_note(self) -> str:
        """The build in words, saying what it is and is not."""
        z = self.build_sd
        if z == 0:
            return "average: the table's mean thickness at every landmark"
        return (f"{self.build}: every mean thickness {z:+g} SD of the table's own spread (floored at "
                f"{MIN_BUILD_MM} mm), the dense thickness prior likewise by {z:+g} of its SD; the table has no "
                "BMI strata, so this SD shift stands in for a build and is not a measured body-mass group")

    def record(self) -> dict[str, Any]:
        """JSON-ready: source, file and hash, build (and its shift in SDs), stratum, the rows used."""
        return {"source": self.source, "path": self.path, "sha256": self.sha256, "build": self.build,
                "build_sd": self.build_sd, "build_note": self.build_note(), "sex": self.sex,
                "age_group": self.age_group,
                "rows": [{"bone": r.bone, "soft": r.soft, "side": r.side, "mean_mm": round(r.mean_mm, 4),
                          "sd_mm": r.sd_mm, "population_mean_mm": p.mean_mm,
                          "paper_landmarks": list(r.paper_landmarks), "stand_in_note": r.stand_in_note,
                          "sex": r.sex, "age_group": r.age_group} for r, p in zip(self.rows, self.population)]}

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> TissueTable:
        """Inverse of `record` (the report reads a run's table back from its ``predict.json``)."""
        def row(r: dict, mean: float) -> Thickness:
            return Thickness(r["bone"], r["soft"], r["side"], float(mean), float(r["sd_mm"]),
                             tuple(r["paper_landmarks"]), r["stand_in_note"], r.get("sex"), r.get("age_group"))

        rows = tuple(row(r, r["mean_mm"]) for r in d["rows"])
        population = tuple(row(r, r.get("population_mean_mm", r["mean_mm"])) for r in d["rows"])
        return cls(rows, population, d["source"], d.get("build", "average"), d.get("sex"), d.get("age_group"),
                   d.get("path"), d.get("sha256"))


def _select(rows: list[Thickness], sex: str | None, age_group: str | None, path: Path,
            header: tuple[str, ...]) -> list[Thickness]:
    """The rows of one stratum: per bony landmark, the most specific row that applies (a row of
    the sex beats a pooled one, a row of the age group one for every age)."""
    best: dict[str, tuple[int, Thickness]] = {}
    words = _stratum_words(sex, age_group) or "pooled, every-age"
    for r in rows:
        if r.sex not in (None, sex) or r.age_group not in (None, age_group):
            continue
        rank = (r.sex is not None) + (r.age_group is not None)
        if r.bone in best and best[r.bone][0] == rank:
            raise InputError(path, f"two rows for bone landmark {r.bone} apply to {words} equally "
                                   f"({_stratum_words(best[r.bone][1].sex, best[r.bone][1].age_group) or 'pooled'} "
                                   f"and {_stratum_words(r.sex, r.age_group) or 'pooled'})")
        if r.bone not in best or rank > best[r.bone][0]:
            best[r.bone] = (rank, r)
    chosen = [r for r in rows if r.bone in best and best[r.bone][1] is r]
    served: dict[str, str] = {}
    for r in chosen:
        for lm in r.paper_landmarks:
            if lm in served:
                raise InputError(path, f"skull landmark {lm} has two rows for {words} ({served[lm]} and {r.bone})")
            served[lm] = r.bone
    for r in rows:
        for lm in r.paper_landmarks:
            if lm not in served:
                hint = ("; choose one with --sex" if sex is None and "sex" in header and r.sex is not None else
                        "; choose one with --age-group" if age_group is None and r.age_group is not None else "")
                raise InputError(path, f"has no {words} row for skull landmark {lm} (only "
                                       f"{_stratum_words(r.sex, r.age_group) or 'pooled'} ones){hint}")
    return chosen


def choose_table(path: str | os.PathLike | None = None, build: str = "average", sex: str | None = None,
                 age_group: str | None = None) -> TissueTable:
    """The thickness rows of a population, a build, a sex and an age group.

    Parameters
    ----------
    path : path-like or None
        A table with the bundled table's columns (`load_table`); None: the bundled Hona &
        Stephan 2024 table (pooled adults: no ``sex``, no ``age_group`` column).
    build : {'lean', 'average', 'heavy'}
        Every row's mean shifted by `BUILDS` [build] of its SD, floored at `MIN_BUILD_MM` mm
        (``average``: the rows as read).
    sex : {'female', 'male'} or None
        Rows of that sex, and pooled / empty ones where the table has none of that sex.
        None: pooled rows only.
    age_group : str or None
        Rows of that age group, and those for every age where it has none. None: rows for every
        age only.

    Returns
    -------
    TissueTable

    Raises
    ------
    InputError
        Naming the table file: malformed (`load_table`); ``sex`` / ``age_group`` given for a table
        without that column (never a made-up adjustment); a skull landmark of the table without a
        row for the chosen stratum.
    ValueError
        ``build`` or ``sex`` not one of the choices.
    """
    if build not in BUILDS:
        raise ValueError(f"build must be one of {', '.join(BUILDS)}, got {build!r}")
    if sex not in (None, *SEXES):
        raise ValueError(f"sex must be one of {', '.join(SEXES)}, got {sex!r}")
    file = Path(_bundled_path() if path is None else path)
    rows, header = _read_table(file)
    who = "Hona & Stephan 2024 gives pooled adult values only" if path is None else "the table gives pooled values only"
    if sex is not None and "sex" not in header:
        raise InputError(file, f"{who} (no sex column): --sex {sex} cannot be honoured; give a table with a sex "
                               "column (--thickness-table)")
    if age_group is not None and "age_group" not in header:
        raise InputError(file, f"{who} (no age_group column): --age-group {age_group} cannot be honoured; give a "
                               "table with an age_group column (--thickness-table)")
    if age_group is not None and not any(r.age_group == age_group for r in rows):
        groups = sorted({r.age_group for r in rows if r.age_group})
        raise InputError(file, f"has no rows of age group {age_group!r} (it has: {', '.join(groups) or 'none'})")
    population = _select(rows, sex, age_group, file, header)
    z = BUILDS[build]
    shifted = [replace(r, mean_mm=max(r.mean_mm + z * r.sd_mm, MIN_BUILD_MM)) if z else r for r in population]
    if path is None:
        source, digest = TABLE_SOURCE, None
    else:
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        source = f"{file.resolve()} (sha256 {digest})"
    return TissueTable(tuple(shifted), tuple(population), source, build, sex, age_group,
                       None if path is None else str(file.resolve()), digest)


def table_of(settings: TissueSettings) -> TissueTable:
    """`choose_table` of a stage's `TissueSettings`."""
    return choose_table(settings.thickness_table, settings.build, settings.sex, settings.age_group)
