"""Stage ``report``: predict/evaluate folders (or a demo run) -> one self-contained HTML page."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..options import option


@dataclass
class ReportSettings:
    """Settings of ``skull2face report``.

    Attributes
    ----------
    title : str or None
        Page title; None: from the runs.
    screenshot : bool
        Also write ``report.png`` with headless Chromium (when one is installed).
    pdf : bool
        Also write ``report.pdf`` (A4, page numbers, still views instead of the 3D view) with
        headless Chromium; without one installed: one clear line, exit status 2.
    method : str or None
        The method whose face the headline picture and the 3D view show; None: the only method
        predicted, else predict's default (`skull2face.stages.predict.PredictSettings`). A
        method with no predict folder among the inputs: one clear line, exit status 2.
    """

    title: str | None = option(None, help="page title (default: from the runs)")
    screenshot: bool = option(False, help="also write report.png with headless Chromium")
    pdf: bool = option(False, help="also write report.pdf (A4, page numbers) with headless Chromium")
    method: str | None = option(None, metavar="NAME",
                                help="the method whose face the headline picture and the 3D view show (default: "
                                     "the only one predicted, else predict's default method); the table keeps "
                                     "every method")


def report(dirs: list[str | os.PathLike], out_dir: str | os.PathLike, settings: ReportSettings | None = None) -> dict:
    """Gather predictions and evaluations into ``out_dir/report.html``.

    Parameters
    ----------
    dirs : list of path-like
        A demo run folder, or any predict/ and evaluate/ folders.
    out_dir : path-like
    settings : ReportSettings, optional

    Returns
    -------
    dict
        ``page`` (path), ``rows`` (metrics per method, truth -> prediction, mm) and
        ``screenshot`` (path, or None when no Chromium was found or none was asked for).
    """
    from ..report.collect import context_from_dirs
    from ..report.html import screenshot, write_report

    from ..io.run_folder import run_folder
    from .predict import PredictSettings

    settings = settings or ReportSettings()
    if settings.pdf:
        from ..errors import InputError
        from ..report.browser import find_browser

        if find_browser() is None:  # say so before any work
            raise InputError(None, "--pdf needs Chromium (e.g. apt-get install chromium); none is on PATH")
    with run_folder(out_dir, "report", dirs, markers=("report.html",)) as out:
        ctx = context_from_dirs(dirs, title=settings.title, method=settings.method,
                                default_method=PredictSettings().method)
        write_report(out, ctx)
        if settings.pdf:
            make_pdf(out, ctx)
        rows = {m: v["metrics"] for m, v in ctx["methods"].items() if v.get("metrics")}
        shot = None
        if settings.screenshot:
            shot = out / "report.png" if screenshot(out / "report.html", out / "report.png") else None
    page = Path(out_dir) / "report.html"
    pdf = str(Path(out_dir) / "report.pdf") if settings.pdf else None
    if shot is not None:
        shot = Path(out_dir) / "report.png"
    return {"page": str(page), "rows": rows, "screenshot": None if shot is None else str(shot),
            "screenshot_asked": settings.screenshot, "pdf": pdf}


def make_pdf(out_dir: str | os.PathLike, ctx: dict) -> Path:
    """``out_dir/report.pdf`` from a report context; no or a failing Chromium: `InputError`."""
    from ..errors import InputError
    from ..report.browser import BrowserError
    from ..report.pdf import PDF_NAME, write_pdf

    try:
        return write_pdf(out_dir, ctx)
    except BrowserError as exc:
        raise InputError(Path(out_dir) / PDF_NAME, f"cannot print the PDF: {exc} (install chromium)") from None


def echo(record: dict) -> str:
    """What ``skull2face report`` prints: the metrics table, the screenshot, the page."""
    from ..report.tables import metrics_table

    lines = [metrics_table(record["rows"])] if record["rows"] else []
    if record["screenshot_asked"]:
        lines.append(f"screenshot: {record['screenshot']}" if record["screenshot"] else "screenshot: no Chromium found")
    if record.get("pdf"):
        lines.append(f"pdf: {record['pdf']}")
    return "\n".join(lines + [f"report: {record['page']}"])
