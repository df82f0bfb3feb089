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
    """

    title: str | None = option(None, help="page title (default: from the runs)")
    screenshot: bool = option(False, help="also write report.png with headless Chromium")


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

    settings = settings or ReportSettings()
    with run_folder(out_dir, "report", dirs, markers=("report.html",)) as out:
        ctx = context_from_dirs(dirs, title=settings.title)
        write_report(out, ctx)
        rows = {m: v["metrics"] for m, v in ctx["methods"].items() if v.get("metrics")}
        shot = None
        if settings.screenshot:
            shot = out / "report.png" if screenshot(out / "report.html", out / "report.png") else None
    page = Path(out_dir) / "report.html"
    if shot is not None:
        shot = Path(out_dir) / "report.png"
    return {"page": str(page), "rows": rows, "screenshot": None if shot is None else str(shot),
            "screenshot_asked": settings.screenshot}


def echo(record: dict) -> str:
    """What ``skull2face report`` prints: the metrics table, the screenshot, the page."""
    from ..report.tables import metrics_table

    lines = [metrics_table(record["rows"])] if record["rows"] else []
    if record["screenshot_asked"]:
        lines.append(f"screenshot: {record['screenshot']}" if record["screenshot"] else "screenshot: no Chromium found")
    return "\n".join(lines + [f"report: {record['page']}"])
