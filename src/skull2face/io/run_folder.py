"""Output folders of a run: checked before any work, claimed, and filled all at once.

A stage that writes an ``--out`` folder does it through `run_folder`:

1. `check_out` refuses, before any slow work, an ``--out`` that is an existing file, lies
   under a file, cannot be created or written, or would replace an input (an input file inside
   the folder, or the folder itself) -- one `InputError` line each.
2. The folder is *claimed*: an exclusive ``flock`` on the hidden sibling ``.NAME.lock``, held
   for the whole run. A second run into the same folder while the first is alive is refused
   (naming the folder); a killed run's lock dies with its process.
3. The run writes into a fresh hidden sibling ``.NAME.part-XXXX``; only when the stage
   returns is it renamed into place (an earlier run's folder is moved aside and deleted, so
   files of two runs never mix). An exception removes the partial folder; a SIGKILL leaves it,
   and the next claim of the folder deletes it. A finished folder therefore always holds
   exactly one complete run.

An existing folder is only replaced when it is empty or holds a run of the same stage (its
record ``STAGE.json`` or another of the stage's marker files): a folder of the user's own
files is refused, never deleted.

Training writes checkpoints into its folder as it goes (a killed run resumes from them), so it
claims its folder in place (``replace=False``): locked and checked, but not swapped.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import InputError

PathLike = str | os.PathLike


def _resolved(p: PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(p)))).resolve()


def _existing_ancestor(path: Path) -> Path:
    """The nearest path at or above ``path`` that exists (``/`` at the latest)."""
    p = path
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def check_out(out: PathLike, inputs: Iterable[PathLike | None] = (), kind: str = "folder") -> Path:
    """Refuse an output path that cannot be used, before any work; return it resolved.

    Parameters
    ----------
    out : path-like
        The ``--out`` folder (``kind="folder"``) or file (``kind="file"``).
    inputs : iterable of path-like or None
        Every file or folder the run reads (None entries are skipped). A folder output may not
        be an input nor contain one (it is replaced as a whole); a file output may not be an
        input.
    kind : {"folder", "file"}

    Raises
    ------
    InputError
        Naming ``out`` (or the input it would overwrite) and the problem.
    """
    given = Path(os.fspath(out))
    path = _resolved(out)
    if kind == "folder" and path.exists() and not path.is_dir():
        raise InputError(given, "--out is an existing file; give a folder")
    if kind == "file" and path.is_dir():
        raise InputError(given, "--out is an existing folder; give a file name")
    anc = _existing_ancestor(path.parent)
    if not anc.is_dir():
        raise InputError(given, f"--out lies under {anc}, which is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(given, f"--out cannot be written: no write permission in {anc}")
    for inp in inputs:
        if inp is None or os.fspath(inp) in ("", "-"):
            continue
        ip = _resolved(inp)
        if kind == "file":
            clash = ip == path or (ip.exists() and path.exists() and os.path.samefile(ip, path))
        else:
            clash = ip == path or path in ip.parents
        if clash:
            raise InputError(inp, f"is an input and --out {given} would overwrite it; choose another --out")
    return path


def _open_lock(lock: Path, owner: Path) -> int:
    """Open and exclusively ``flock`` ``lock``; `InputError` naming ``owner`` when another run holds it."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise InputError(owner, "another skull2face run is writing this folder now; wait for it to "
                                        "finish or choose another --out") from None
            raise
        # the previous holder may have deleted the lock file between our open and flock
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def claim(out: PathLike) -> Iterator[Path]:
    """Hold the lock of output ``out`` (folder or file) for the ``with`` block; yield its resolved path."""
    path = _resolved(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_lock(path.parent / f".{path.name}.lock", Path(os.fspath(out)))
    except OSError as exc:
        raise InputError(out, f"--out cannot be written: {exc.strerror or exc}") from None
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path.parent / f".{path.name}.lock")
        os.close(fd)


def _replaceable(path: Path, markers: tuple[str, ...]) -> bool:
    if not path.exists():
        return True
    names = [p.name for p in path.iterdir()]
    return not names or any(m in names for m in markers)


@contextlib.contextmanager
def run_folder(out: PathLike, stage: str, inputs: Iterable[PathLike | None] = (),
               markers: tuple[str, ...] = (), replace: bool = True) -> Iterator[Path]:
    """Claim the output folder of one run; yield the folder to write into.

    Parameters
    ----------
    out : path-like
        The ``--out`` folder.
    stage : str
        The stage's name: a folder holding ``STAGE.json`` (or one of ``markers``) is an
        earlier run of it and may be replaced.
    inputs : iterable of path-like or None
        What the run reads (see `check_out`).
    markers : tuple of str
        Other file names that mark an earlier run of the stage.
    replace : bool
        True: yield a fresh temporary sibling folder, renamed onto ``out`` when the block ends
        without an exception. False: yield ``out`` itself (created if needed), only locked.

    Yields
    ------
    pathlib.Path
        The folder the run writes into (not ``out`` when ``replace``: record only paths
        relative to it).

    Raises
    ------
    InputError
        See `check_out`; also when another live run holds ``out``, or when ``out`` holds files
        that are not an earlier run of ``stage``.
    """
    inputs = list(inputs)
    given = Path(os.fspath(out))
    path = check_out(out, inputs, "folder")
    markers = (f"{stage}.json", *markers)
    with claim(out):
        parent = path.parent
        for stale in parent.glob(f".{path.name}.part-*"):  # left by a killed run (no live run holds the lock)
            shutil.rmtree(stale, ignore_errors=True)
        if not replace:
            try:
                path.mkdir(exist_ok=True)
            except OSError as exc:
                raise InputError(given, f"--out cannot be written: {exc.strerror or exc}") from None
            yield path
            return
        if not _replaceable(path, markers):
            raise InputError(given, f"--out holds files that are not a skull2face {stage} run; choose a new or "
                                    "empty folder (it would be replaced)")
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.part-", dir=parent))
        except OSError as exc:
            raise InputError(given, f"--out cannot be written: {exc.strerror or exc}") from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes private folders; outputs get the usual permissions
        try:
            yield tmp
            old = None
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=parent))
                os.replace(path, old / "run")
            os.replace(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def out_file(out: PathLike, inputs: Iterable[PathLike | None] = ()) -> Iterator[Path]:
    """Check and claim an output file (``--out FILE``) for the ``with`` block; yield its path.

    The file itself is written atomically by `skull2face.io.atomic`; the claim keeps two runs
    from writing it at once and refuses overwriting an input (`check_out` with ``kind="file"``).
    """
    check_out(out, inputs, "file")
    with claim(out):
        yield Path(os.fspath(out))
