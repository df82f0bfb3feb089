"""Published facial soft-tissue thickness (FSTT): how deep the skin lies over each bony landmark.

The bundled table ``data/tissue/fstt_hona_stephan_2024.csv`` holds the pooled adult means and
standard deviations (mm) of

    Hona & Stephan (2024), International Journal of Legal Medicine 138: 519-535.

Its rows use the Caple & Stephan nomenclature (``g``, ``n``, ``pg``, ``zy``, ...). The last
column, ``paper_table1_landmark``, says which skull landmark of the paper's Table 1 each row
stands for; where the table has no value for a landmark, a neighbouring row stands in and the
column says so in brackets, e.g. ``Fmt/Da (stand-in: ...)``.
"""

from __future__ import annotations

import csv
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, finite_number
from . import names

COLUMNS = ("bone_landmark", "soft_landmark", "side", "mean_mm", "sd_mm", "paper_table1_landmark")
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
    """

    bone: str
    soft: str
    side: str
    mean_mm: float
    sd_mm: float
    paper_landmarks: tuple[str, ...]
    stand_in_note: str | None

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
        A CSV with the columns of `COLUMNS`; None reads the bundled table.

    Returns
    -------
    list of Thickness
        One per row, in file order.

    Raises
    ------
    InputError
        Naming the file, if it is missing, lacks a column, has a non-numeric or non-positive
        thickness, or assigns a skull landmark to two rows.
    """
    if path is None:
        from ..samples import path as sample_path

        path = sample_path("tissue")
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "thickness table not found")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise InputError(path, f"thickness table lacks column(s) {', '.join(missing)}; "
                                       f"expected {','.join(COLUMNS)}")
            raw_rows = list(reader)
    except UnicodeDecodeError:
        raise InputError(path, "thickness table is not UTF-8 text") from None
    except csv.Error as exc:
        raise InputError(path, f"thickness table is not valid CSV: {exc}") from None

    rows: list[Thickness] = []
    claimed: dict[str, str] = {}
    for i, raw in enumerate(raw_rows):
        line = i + 2  # 1-based, after the header
        if None in raw or any(raw[c] is None for c in COLUMNS):
            raise InputError(path, f"line {line}: expected {len(COLUMNS)} fields")
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
        for lm in paper:
            if lm in claimed:
                raise InputError(path, f"line {line}: skull landmark {lm} is already assigned to "
                                       f"row {claimed[lm]}")
            claimed[lm] = bone
        rows.append(Thickness(bone, soft, side, mean, sd, paper, note))
    if not rows:
        raise InputError(path, "thickness table has no rows")
    return rows


@functools.lru_cache(maxsize=1)
def _bundled() -> tuple[Thickness, ...]:
    return tuple(load_table())


def thickness_for(skull_landmark_name: str, table: list[Thickness] | None = None) -> Thickness:
    """The thickness row used for a skull landmark of the paper's Table 1.

    Parameters
    ----------
    skull_landmark_name : str
        Any spelling `names.resolve_name` accepts on the skull (``"G"``, ``"Zy_L"``,
        ``"dacryon right"``); both sides of a paired landmark share one row.
    table : list of Thickness or None
        Rows from `load_table`; None uses the bundled table.

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
