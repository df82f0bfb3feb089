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
