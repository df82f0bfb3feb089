"""Many head volumes named at once: files, folders, list files and globs -> one list of volumes.

Used by ``skull2face dataset build`` (positional CTs, ``--ct``, ``--ct-list``). Each item is

* a volume file (``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``): itself;
* a folder that holds volume files: those files, sorted by name (not its subfolders);
* any other folder (one holding DICOM files): ONE series, read by `io.volumes.read_volume`;
* ``@FILE``: the paths listed in FILE (as ``--ct-list FILE``): one a line, ``#`` starts a
  comment, blank lines are skipped, relative paths are relative to FILE's folder; each line is
  expanded by these same rules (but a list file naming another list file is refused);
* a pattern with ``*``, ``?`` or ``[`` that the shell did not expand (it was quoted): the
  matching paths, sorted, each expanded by these rules.

A path met twice (after resolving) is kept once, at its first place. Problems end in one
`InputError` line naming the item.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..errors import InputError
from .volumes import volume_stem

_GLOB_CHARS = "*?["


def _is_glob(item: str) -> bool:
    return any(c in item for c in _GLOB_CHARS)


def read_list_file(path: str | os.PathLike) -> list[str]:
    """The paths listed in a list file (one a line, ``#`` comments), relative to its folder."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "list file not found" if not p.exists() else "a list file must be a text file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(p, f"cannot read the list file ({exc})") from None
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line if os.path.isabs(line) else str(p.parent / line))
    if not out:
        raise InputError(p, "the list file names no volume")
    return out


def _expand_one(item: str, from_list: bool) -> list[Path]:
    if item.startswith("@"):
        if from_list:
            raise InputError(item, "a list file may not name another list file")
        return [q for line in read_list_file(item[1:]) for q in _expand_one(line, True)]
    p = Path(item)
    if not p.exists() and _is_glob(item):
        hits = sorted(glob.glob(os.path.expanduser(item)))
        if not hits:
            raise InputError(item, "no file matches this pattern")
        return [q for h in hits for q in _expand_one(h, from_list)]
    if not p.exists():
        raise InputError(p, "not found")
    if p.is_dir():
        files = sorted(c for c in p.iterdir() if c.is_file() and volume_stem(c) is not None)
        return files or [p]
    if volume_stem(p) is None:
        raise InputError(p, "not a head CT volume (a DICOM series folder, or a .nii/.nii.gz/.nrrd/.mha/.mhd file)")
    return [p]


def expand_volume_inputs(items: list[str | os.PathLike] | None, list_files: list[str | os.PathLike] | None = None
                         ) -> list[Path]:
    """Expand volume arguments (module docstring) into volume paths, duplicates removed.

    Parameters
    ----------
    items : list of path-like or None
        Files, folders, ``@list`` files and patterns, as given.
    list_files : list of path-like or None
        List files (``--ct-list``), expanded after ``items``.

    Returns
    -------
    list of Path
        Volume files and DICOM series folders, in the order met.
    """
    raw = [str(i) for i in (items or [])] + [f"@{f}" for f in (list_files or [])]
    out, seen = [], set()
    for item in raw:
        for p in _expand_one(item, False):
            key = os.path.realpath(p)
            if key not in seen:
                seen.add(key)
                out.append(p)
    return out
