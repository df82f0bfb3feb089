"""The report as a PDF for the case file: A4, page numbers, the caveat on the first page.

Made by headless Chromium's own print (`skull2face.report.browser.Browser.pdf`) from the same
page (`skull2face.report.html.render_html` with ``for_print=True``): the interactive 3D view is
replaced by still pictures of the skull and the predicted face seen from the front, the side
and three-quarters (`view_pictures`, ray-cast like the other pictures).

Chromium was chosen over a Python HTML-to-PDF library because it is the browser the report is
already checked in: the PDF shows exactly what the page shows (same CSS engine, the same
fonts), it needs no new Python dependency, and it prints page numbers through its footer
template. Printing the demo's page takes about 2-4 s.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_path

PDF_NAME = "report.pdf"

#: Footer of every page: the caveat in short and "page n of N".
FOOTER = ('<div style="font-size:8px; width:100%; margin: 0 12mm; color:#555; display:flex; '
          'justify-content:space-between; font-family: Helvetica, Arial, sans-serif;">'
          "<span>skull2face facial approximation: an investigative lead, not an identification</span>"
          '<span>page <span class="pageNumber"></span> of <span class="totalPages"></span></span></div>')


def view_pictures(scene: Mapping[str, Any], out_dir: str | os.PathLike, px: int = 560) -> dict[str, Path]:
    """Still pictures of the skull with the predicted face over it: front, side, three-quarter.

    Parameters
    ----------
    scene : mapping
        As the report context's ``scene`` (`skull2face.report.scene3d.layers_from_files`).
    out_dir : path-like
        Where the PNGs go.
    px : int
        Side of each picture, pixels.

    Returns
    -------
    dict of str to pathlib.Path
        Caption -> PNG (empty when the scene has no face).
    """
    from .pictures import save_png, new_figure, shade
    from .scene3d import COLOURS, layers_from_files, view_axes

    layers = [ly for ly in layers_from_files(scene) if ly.name in ("skull", "face")]
    if not any(ly.name == "face" for ly in layers):
        return {}
    axes = view_axes(scene.get("frame"))
    up, front, left = (np.asarray(axes[k]) for k in ("up", "front", "left"))
    colours = [tuple(int(COLOURS[ly.name][i:i + 2], 16) / 255 for i in (1, 3, 5)) for ly in layers]
    alpha = [1.0 if ly.name == "skull" else 0.85 for ly in layers]
    out = {}
    for caption, towards in (("front", front), ("side (subject's left)", left),
                             ("three-quarter (front left)", (front + left) / np.sqrt(2))):
        img = shade([ly.mesh for ly in layers], colours, -towards, up, px=px, alpha=alpha)
        fig = new_figure((px / 100, px / 100))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(img)
        ax.axis("off")
        out[f"skull and predicted face: {caption}"] = save_png(fig, Path(out_dir) / f"view_{len(out)}.png")
    return out


def write_pdf(out_dir: str | os.PathLike, context: Mapping[str, Any], timeout_s: float = 120.0) -> Path:
    """Write ``out_dir/report.pdf`` (atomically) from a report context.

    Raises
    ------
    skull2face.report.browser.BrowserError
        When no Chromium is installed or it fails.
    """
    from .browser import Browser
    from .html import render_html

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="skull2face-pdf-") as tmp:
        ctx = dict(context)
        if ctx.get("scene") and not ctx.get("views"):
            ctx["views"] = view_pictures(ctx["scene"], tmp)
        page = Path(tmp) / "print.html"
        page.write_text(render_html(ctx, for_print=True), encoding="utf-8")
        with Browser(width=794, height=1123, timeout_s=timeout_s) as browser:  # A4 at 96 px per inch
            browser.open(page)
            data = browser.pdf(FOOTER)
    target = out / PDF_NAME
    with atomic_path(target) as tmp_path:
        tmp_path.write_bytes(data)
    return target


def pdf_pages(data: bytes) -> int:
    """Number of pages of a PDF written by Chromium (its page objects are not compressed)."""
    import re

    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))


__all__ = ["FOOTER", "PDF_NAME", "pdf_pages", "view_pictures", "write_pdf"]
