"""The one exception users see: bad input, named by file and problem."""

from __future__ import annotations

import os


class InputError(ValueError):
    """Input that skull2face cannot use.

    The message always names the offending file (when there is one) and says what is wrong
    and, where possible, what to do about it. The CLI prints it without a traceback.

    Parameters
    ----------
    path : str or os.PathLike or None
        The file or folder the problem is in.
    problem : str
        What is wrong, in words a user can act on.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def finite_number(value: object, path: str | os.PathLike | None, what: str, hint: str = "") -> float:
    """``float(value)``, or an `InputError` naming ``path`` and ``what`` when it is not a finite number.

    Parameters
    ----------
    value : object
        Text or number read from a file.
    path : path-like or None
        The file it was read from.
    what : str
        What the value is, e.g. ``"line 4: mean_mm"`` or ``"z_near"``.
    hint : str
        Appended to the message, e.g. where the format is documented.
    """
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(path, f"{what} is {value!r}, not a number{hint}") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise InputError(path, f"{what} is {value!r}, not a finite number{hint}")
    return out
