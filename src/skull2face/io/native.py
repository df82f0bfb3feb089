"""Native libraries' console output (ITK, GDCM, MetaIO) into the log instead of onto stderr.

ITK prints its warnings through its output window, and MetaIO and GDCM print straight to the
C++ ``std::cerr``: raw lines such as ``WARNING: In .../itkNiftiImageIO.cxx`` or ``MetaImage:
M_ReadElements: data not read completely`` used to appear before skull2face's own one-line
error. `native_output_to_log` routes ITK's output window to the ``skull2face.native`` logger
(SimpleITK's `LoggerBase`) and, for the libraries that bypass it, points file descriptor 2 at
a temporary file while a reader runs, then logs what was written there. Both are logged at
DEBUG level: ``skull2face -v`` shows them, a plain run does not.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from typing import Iterator

import SimpleITK as sitk

log = logging.getLogger("skull2face.native")


class _ItkToLog(sitk.LoggerBase):
    """ITK's output window as a logger: every text becomes one DEBUG record per line."""

    def _emit(self, text: str, kind: str) -> None:
        for line in str(text).splitlines():
            if line.strip():
                log.debug("ITK %s: %s", kind, line.strip())

    def DisplayText(self, t):  # noqa: N802 (ITK's names)
        self._emit(t, "text")

    def DisplayErrorText(self, t):  # noqa: N802
        self._emit(t, "error")

    def DisplayWarningText(self, t):  # noqa: N802
        self._emit(t, "warning")

    def DisplayGenericOutputText(self, t):  # noqa: N802
        self._emit(t, "output")

    def DisplayDebugText(self, t):  # noqa: N802
        self._emit(t, "debug")


_ITK_LOGGER: list[_ItkToLog] = []  # the installed logger, kept alive for ITK


def route_itk_to_log() -> None:
    """Make ITK's output window write into the log (once per process)."""
    if not _ITK_LOGGER:
        logger = _ItkToLog()
        logger.SetAsGlobalITKLogger()
        _ITK_LOGGER.append(logger)


@contextlib.contextmanager
def native_output_to_log() -> Iterator[None]:
    """Within the block, ITK's messages and anything native code writes to file descriptor 2
    go to the ``skull2face.native`` logger (DEBUG) instead of the terminal.

    Python's own ``sys.stderr`` writes in the block are captured too, so keep the block to the
    native call (a read), not the code that logs around it.
    """
    route_itk_to_log()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 2: nothing to redirect
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            for line in text.splitlines():
                if line.strip():
                    log.debug("native output: %s", line.rstrip())


__all__ = ["native_output_to_log", "route_itk_to_log"]
