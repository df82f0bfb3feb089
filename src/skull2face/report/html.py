"""One self-contained HTML page per result: pictures, metrics against the baselines, provenance.

The page opens offline and can be mailed as one file: every picture is embedded as a base64
``data:`` URI, the style sheet is inline, and there are no scripts, web fonts or links to
other resources. All text taken from the context is escaped with `provenance.e` (`html.escape`).

`screenshot` renders a page to PNG with headless Chromium when one is installed (used to check
what a reader sees, and for previews), through `skull2face.report.browser`.
"""

from __future__ import annotations

import base64
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_path, write_text
from . import provenance
from .browser import Browser, BrowserError, find_browser
from .provenance import e as _e  # the one HTML escape of the report

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"

#: Metrics table columns: (key in a method's ``metrics``, header, unit, lower is better, scale).
#: Keys are those of `skull2face.stages.evaluate` (shares are fractions 0..1, shown in %).
COLUMNS: tuple[tuple[str, str, str, bool, float], ...] = (
    ("rmse_mm", "RMSE", "mm", True, 1.0),
    ("mean_mm", "mean", "mm", True, 1.0),
    ("median_mm", "median", "mm", True, 1.0),
    ("p95_mm", "p95", "mm", True, 1.0),
    ("max_mm", "max", "mm", True, 1.0),
    ("share_within_1mm", "within 1 mm", "%", False, 100.0),
    ("share_within_2mm", "within 2 mm", "%", False, 100.0),
    ("share_within_2.5mm", "within 2.5 mm", "%", False, 100.0),
)

STATEMENT = (
    "This facial approximation is an investigative lead, not an identification. It shows one "
    "plausible face for this skull, built from population averages and learned patterns; the "
    "real face may differ in ways that matter for recognition (nose, lips, eyes, ears, fat, "
    "hair and age are barely constrained by bone). Use it only to generate leads, e.g. to ask "
    "the public or compare with missing-person records; never to identify, include or exclude "
    "a person. Identification needs DNA, dental records, fingerprints or comparable evidence."
)

ERROR_EXPLANATION = (
    "The error figures are distances in millimetres between the true skin of this test head "
    "(known from its CT, never shown to the model) and each predicted surface, over the face "
    "region, area-weighted: RMSE and mean summarise the typical gap, p95 and max the worst "
    "places, and 'within x mm' is the share of the face that lies that close. They measure "
    "the method on a head whose face is known; for an unknown skull no error can be measured, "
    "and errors of at least this size should be expected. The best value of each column is "
    "highlighted."
)

NO_TRUTH_EXPLANATION = (
    "No true skin is known for this skull, so no error can be measured here. On real heads whose "
    "skin was known and never shown to the method, the default method's face lay 2.4 to 4.2 mm "
    "(RMSE) from the true skin over the face (README, 'Accuracy'): expect errors of at least that "
    "size, largest at the nose, lips, cheeks and chin."
)

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       background: #f4f4f2; color: #1d1d1d; line-height: 1.45; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 1.55em; margin: 0.2em 0 0.4em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.subtitle { color: #555; margin-top: 0; }
.statement { border: 3px solid #b3261e; background: #fdecea; padding: 14px 18px; font-size: 1.08em;
             border-radius: 6px; margin: 16px 0; }
.statement strong { color: #8c1d18; }
.explain { color: #333; font-size: 0.95em; }
.gallery { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; flex: 1 1 460px; max-width: 100%; }
figure img { width: 100%; height: auto; border: 1px solid #ccc; background: #fff; cursor: zoom-in; }
label.zoom input:checked + img { position: fixed; inset: 0; width: 100vw; height: 100vh; object-fit: contain;
    background: rgba(20, 20, 20, 0.92); border: 0; z-index: 100; cursor: zoom-out; }
.heatrow { display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; margin: 10px 0 18px; }
.heatrow figure { flex: 2 1 520px; }
figure.wide { flex: 1 1 100%; }
.regiontable { flex: 1 1 360px; }
details { margin: 6px 0 12px; }
summary { cursor: pointer; color: #355; }
h3 { font-size: 1.0em; margin: 1.0em 0 0.3em; }
figcaption { font-size: 0.9em; color: #444; margin-top: 4px; }
.missing { border: 1px dashed #aaa; padding: 24px; color: #777; text-align: center; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.95em; }
th, td { border: 1px solid #ccc; padding: 5px 9px; text-align: right; }
th { background: #eee; }
td.name, th.name { text-align: left; }
td.best { background: #d7f0d4; font-weight: bold; }
tr.main td.name { font-weight: bold; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: 10px; overflow-x: auto; font-size: 0.85em; }
code, .hash { font-family: Menlo, Consolas, monospace; font-size: 0.88em; word-break: break-all; }
footer { margin-top: 2.5em; color: #777; font-size: 0.85em; }
"""

#: Extra style of the page printed to PDF: A4 width, no zoom, raw JSON left closed.
_PRINT_CSS = """
body { background: #fff; font-size: 10.5pt; }
main { max-width: none; padding: 0; }
figure { flex: 1 1 30%; break-inside: avoid; }
figure.wide { flex: 1 1 100%; }
.heatrow, table, .statement { break-inside: avoid; }
.heatrow { flex-wrap: nowrap; }
.heatrow figure { flex: 1 1 52%; }
.regiontable { flex: 1 1 46%; font-size: 0.85em; }
h2 { break-after: avoid; }
h2.provenance { break-before: page; }
details { display: none; }
"""


def _image_uri(path: str | os.PathLike) -> str | None:
    """``data:`` URI of a PNG or JPEG file, or None if it is missing or not such an image."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError:
        return None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        mime = "image/png"
    elif data.startswith(b"\xff\xd8\xff"):
        mime = "image/jpeg"
    else:
        return None
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _figure(path: Any, caption: str, wide: bool = False) -> str:
    """One picture with its caption; ``wide``: the whole page width (a strip of panels)."""
    if not path:
        return ""
    uri = _image_uri(path)
    tag = '<figure class="wide">' if wide else "<figure>"
    if uri is None:
        return (f'{tag}<div class="missing">picture not available<br><code>{_e(Path(path).name)}</code></div>'
                f"<figcaption>{_e(caption)}</figcaption></figure>")
    return (f'{tag}<label class="zoom" title="click to enlarge"><input type="checkbox" hidden>'
            f'<img src="{uri}" alt="{_e(caption)}"></label><figcaption>{_e(caption)}</figcaption></figure>')


def measurements_html(rows: list[Mapping[str, Any]]) -> str:
    """The skull's standard measurements (`skull2face.anatomy.measurements`) as a table."""
    body = "".join(
        f"<tr><td>{_e(r.get('key'))}</td><td>{_e(r.get('name'))}</td>"
        f"<td>{'' if _number(r.get('mm')) is None else format(_number(r.get('mm')), '.1f')}</td>"
        f"<td>{_e(' - '.join(r.get('points') or {}) or 'missing: ' + str(r.get('missing')))}</td>"
        f"<td>{_e(r.get('source'))}</td></tr>" for r in rows)
    return ('<h2 id="measurements">Standard measurements of the skull</h2><p class="explain">Osteometric '
            "measurements the skull's landmarks and vault allow (mm), each between the two points named; "
            "opisthocranion and the eurya are found on the vault (skull2face measure writes them alone).</p>"
            '<table class="measurements"><tr><th>key</th><th>measurement</th><th>mm</th><th>points</th>'
            f"<th>definition</th></tr>{body}</table>")


def samples_html(drawn: Mapping[str, Any], method: str, band: Mapping[str, Any] | None = None) -> str:
    """The section on ``predict --samples``: how many plausible heads, how uncertain the face
    is, the calibration, how much of the true skin the band holds (``band``: evaluate's record,
    where there is a truth), the contact sheet and the uncertainty heat map."""
    sd, width = drawn.get("face_sd_mm") or {}, drawn.get("face_band_mm") or {}
    lo, hi = (drawn.get("band_percent") or [5, 95])[:2]
    text = (f"The skull leaves the face open: {drawn.get('n')} plausible whole heads consistent with it were drawn "
            f"around the {method} face (seed {drawn.get('seed')}; files samples/face_XX.ply). Over the face, "
            f"the predicted surface is uncertain by a median SD of {_number(sd.get('median')) or 0:.1f} mm "
            f"(95th percentile {_number(sd.get('p95')) or 0:.1f} mm); the median width of its {lo:g}-{hi:g} % band "
            f"is {_number(width.get('median')) or 0:.1f} mm. Per point, uncertainty.ply holds sd_mm, p05_mm and "
            f"p95_mm (scalar fields in MeshLab, CloudCompare or ParaView). Calibration: "
            f"{drawn.get('calibration') or 'none recorded'}.")
    if band and _number(band.get("inside")) is not None:
        regions = ", ".join(f"{k} {100 * v['inside']:.0f} %" for k, v in (band.get("regions") or {}).items()
                            if v and _number(v.get("inside")) is not None)
        text += (f" Against this head's true skin: {100 * band['inside']:.0f} % of the face region lies inside the "
                 f"{lo:g}-{hi:g} % band" + (f" ({regions})" if regions else "") + ".")
    gallery = [_figure(drawn.get("samples_picture"), f"{drawn.get('n')} plausible faces of this skull, from the front"),
               _figure(drawn.get("uncertainty_picture"), "uncertainty of the predicted face: the SD over the "
                       "plausible heads, along the surface normal (mm)", wide=True)]
    return ('<h2 id="samples">A range of plausible faces</h2>'
            f'<p class="explain">{_e(text)}</p><div class="gallery">{"".join(g for g in gallery if g)}</div>')


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def metrics_html(methods: Mapping[str, Mapping[str, Any]], main_method: str | None = None) -> str:
    """The metrics table: one row per method, the best value of each column highlighted.

    Parameters
    ----------
    methods : mapping of str to mapping
        Method name -> ``{"metrics": {key: value}}`` with the keys of `COLUMNS` (missing keys
        show as a dash).
    main_method : str, optional
        Its row is set in bold.

    Returns
    -------
    str
        An HTML ``<table>``.
    """
    rows = {name: dict(entry.get("metrics") or {}) for name, entry in methods.items()}
    best: dict[str, float] = {}
    for key, _h, _u, lower, _s in COLUMNS:
        values = [v for v in (_number(m.get(key)) for m in rows.values()) if v is not None]
        if values:
            best[key] = min(values) if lower else max(values)
    head = "".join(f"<th>{_e(h)}<br><small>{_e(u)}</small></th>" for _k, h, u, _l, _s in COLUMNS)
    lines = [f'<table class="metrics"><thead><tr><th class="name">method</th>{head}</tr></thead><tbody>']
    for name, m in rows.items():
        cells = []
        for key, _h, _u, _lower, scale in COLUMNS:
            v = _number(m.get(key))
            if v is None:
                cells.append("<td>&ndash;</td>")
                continue
            text = f"{scale * v:.0f}" if scale != 1.0 else f"{v:.2f}"
            cls = ' class="best"' if key in best and v == best[key] and len(rows) > 1 else ""
            cells.append(f"<td{cls}>{_e(text)}</td>")
        tr = ' class="main"' if name == main_method else ""
        lines.append(f'<tr{tr}><td class="name">{_e(name)}</td>{"".join(cells)}</tr>')
    lines.append("</tbody></table>")
    return "\n".join(lines)


def _heat_with_regions(name: str, entry: Mapping[str, Any]) -> str:
    """A method's heat map with its per-region errors beside it (when the evaluation has them)."""
    fig = _figure(entry.get("heatmap"), f"error map: {name}")
    regions = (entry.get("metrics") or {}).get("regions") or {}
    if not regions:
        return fig
    return (f'<div class="heatrow">{fig}<div class="regiontable"><p class="explain"><strong>{_e(name)}</strong>: '
            f"errors per part of the face (true skin to prediction)</p>{provenance.regions_html(regions)}</div></div>")


def _scene_section(context: Mapping[str, Any]) -> str:
    """The interactive 3D view, or a note saying why there is none."""
    from . import scene3d

    try:
        layers = scene3d.layers_from_files(context["scene"])
        if not layers:
            return ""
        return scene3d.section_html(layers, frame=context["scene"].get("frame"))
    except Exception as exc:  # the page without the view beats no page; the reason is shown
        log.warning("3D view left out: %s", exc)
        return f'<p class="explain">3D view left out: {_e(exc)}</p>'


def render_html(context: Mapping[str, Any], for_print: bool = False) -> str:
    """The report page as a string (see `write_report` for ``context``).

    ``for_print``: the page for the PDF: the still pictures of ``context["views"]`` instead of
    the interactive 3D view, every picture at full width.
    """
    from .. import __version__
    from . import scene3d

    title = str(context.get("title") or "skull2face facial approximation")
    methods: Mapping[str, Mapping[str, Any]] = context.get("methods") or {}
    main = context.get("main_method")
    if main is None and methods:
        main = next(iter(methods))
    main_entry = methods.get(main, {}) if main else {}
    view3d = "" if for_print or not context.get("scene") else _scene_section(context)

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}{scene3d.CSS if view3d else ''}{_PRINT_CSS if for_print else ''}"
        "</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
    ]
    if context.get("subject"):
        parts.append(f'<p class="subtitle">Subject: {_e(context["subject"])}</p>')
    first, _, rest = STATEMENT.partition(". ")
    parts.append(f'<div class="statement" role="note"><strong>{_e(first)}.</strong> {_e(rest)}</div>')

    parts.append("<h2>Skull and predicted face</h2>")
    if main and (main_entry.get("picture") or context.get("scene")):
        why = context.get("main_method_why")
        shown = "The pictures here and the 3D view" if view3d else "The pictures here"
        parts.append(f'<p class="explain" id="headline-method">{shown} show the face predicted by '
                     f"<strong>{_e(main)}</strong>{f' ({_e(why)})' if why else ''}; the accuracy table "
                     "below lists every method.</p>")
    gallery = [_figure(context.get("input_picture"), "input skull"),
               _figure(main_entry.get("picture"), f"predicted face ({main}): the skull, the face over it from the "
                       "front and the left, and the true skin where it is known" if main else "predicted face",
                       wide=True)]
    if context.get("truth_picture"):
        gallery.append(_figure(context["truth_picture"], "true face (for evaluation only)"))
    parts.append('<div class="gallery">' + "".join(g for g in gallery if g) + "</div>")
    if main_entry.get("samples"):
        parts.append(samples_html(main_entry["samples"], main, main_entry.get("band")))
    if main_entry.get("measurements"):
        parts.append(measurements_html(main_entry["measurements"]))
    if for_print and context.get("views"):
        parts.append("<h2>Front, side and three-quarter views</h2>")
        parts.append('<div class="gallery">' + "".join(_figure(p, c) for c, p in context["views"].items()) + "</div>")
    parts.append(view3d)

    if methods and not any(m.get("metrics") for m in methods.values()):
        parts.append("<h2>Accuracy</h2>")
        parts.append(f'<p class="explain">{_e(NO_TRUTH_EXPLANATION)}</p>')
    elif methods:
        parts.append("<h2>Accuracy against the true skin</h2>")
        parts.append(metrics_html(methods, main))
        parts.append(f'<p class="explain">{_e(ERROR_EXPLANATION)}</p>')
        summaries = [(n, e.get("summary")) for n, e in methods.items() if e.get("summary")]
        if summaries:
            parts.append("<ul>" + "".join(f"<li><strong>{_e(n)}</strong>: {_e(s)}</li>" for n, s in summaries)
                         + "</ul>")
        heat = [_heat_with_regions(n, e) for n, e in methods.items() if e.get("heatmap")]
        if heat:
            parts.append("<h2>Where the errors are</h2>")
            parts.append('<p class="explain">Distance from the true skin to each prediction, per point of the '
                         "face region (mm); beside each map, the same errors per part of the face.</p>")
            parts.append("".join(heat))
        others = [_figure(e.get("picture"), f"face: {n}") for n, e in methods.items()
                  if n != main and e.get("picture")]
        if others:
            parts.append("<h2>The other methods' faces</h2>")
            parts.append('<div class="gallery">' + "".join(others) + "</div>")

    for note in context.get("notes") or ():
        parts.append(f'<p class="explain">{_e(note)}</p>')
    parts.append('<h2 class="provenance">Provenance</h2><p class="explain">What produced this page: the '
                 "model, the published table, the region measured, every setting and the inputs' hashes.</p>")
    if context.get("model_card"):
        parts.append("<h2>Model card</h2>" + provenance.model_card_html(context["model_card"]))
    if context.get("tissue"):
        rows, source = context["tissue"]
        parts.append("<h2>Soft-tissue thickness table used</h2>" + provenance.tissue_html(rows, source))
    if context.get("region"):
        parts.append("<h2>Face region measured</h2>" + provenance.region_html(context["region"]))
    if context.get("settings") is not None:
        parts.append("<h2>Settings</h2>" + provenance.settings_html(context["settings"]))
    hashes = context.get("hashes") or {}
    if hashes:
        parts.append("<h2>Inputs (SHA-256)</h2>" + provenance.hashes_html(hashes))
    viewer = (f" The 3D view uses three.js {_e(scene3d.three_version())} (MIT License, Copyright 2010-2026 "
              "three.js authors), inlined.") if view3d else ""
    parts.append(f"<footer>skull2face {_e(__version__)}. Knyaz et al. 2020-style facial approximation; "
                 f"this page is self-contained and needs no network.{viewer}</footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def write_report(out_dir: str | os.PathLike, context: Mapping[str, Any]) -> Path:
    """Write ``out_dir/report.html``: one self-contained page a forensic user can open offline.

    Parameters
    ----------
    out_dir : path-like
        Created if needed.
    context : mapping
        What to show; every key is optional:

        ``title`` : str
            Page title.
        ``subject`` : str
            Name of the case or test head.
        ``input_picture`` : path
            PNG/JPEG of the input skull.
        ``truth_picture`` : path
            PNG/JPEG of the true face, when known (evaluation on a test head).
        ``methods`` : mapping of str to mapping
            One entry per method (``"skull2face"``, ``"tissue-depth"``, ...), in display order::

                {"metrics": {"rmse_mm": float, "mean_mm": float, "median_mm": float,
                             "p95_mm": float, "max_mm": float,          # mm
                             "share_within_1mm": float, "share_within_2mm": float,
                             "share_within_2.5mm": float,               # fractions 0..1
                             ...},                                      # other keys ignored
                 "picture": path,   # PNG of that method's face
                 "heatmap": path,   # PNG of its error on the true skin
                 "summary": str}    # one line about the method

            (the ``truth_to_prediction`` record of `skull2face.stages.evaluate.evaluate` fits
            ``metrics`` as is).
        ``main_method`` : str
            The method the page is about (default: the first of ``methods``); its picture is
            "the predicted face" (the page says which method it is) and its table row is bold.
        ``main_method_why`` : str
            Why that method leads (e.g. "predict's default method"), said beside its name.
        ``settings`` : JSON-serialisable
            Shown as pretty JSON.
        ``hashes`` : mapping of str to str (or to a mapping with ``"sha256"``)
            Label -> SHA-256 of each input file.
        ``region`` : JSON-serialisable
            Description of the measured face region, shown as JSON.
        ``notes`` : list of str
            Extra paragraphs.
        ``scene`` : mapping
            Meshes of the interactive 3D view (`skull2face.report.scene3d.layers_from_files`:
            ``skull``, ``face``, ``error_mesh`` or ``truth`` paths), ``frame`` (the input ->
            head matrix, 4 x 4, orienting its view buttons; None for LPS input) and ``method``
            (whose face it is: ``main_method``'s).
        ``model_card`` : mapping
            What the model is and what trained it (`skull2face.report.provenance.model_card_html`).
        ``tissue`` : (list of `skull2face.anatomy.tissue.Thickness`, str)
            The thickness table used and its source in words.
        ``views`` : mapping of str to path
            Caption -> still picture, shown instead of the 3D view in the printed page.

        A method's ``metrics`` may hold ``regions`` (sub-region -> the same figures), shown
        beside its heat map.

        Pictures that are missing or not PNG/JPEG show as a placeholder naming the file.

    Returns
    -------
    pathlib.Path
        The page, written atomically.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_text(out / REPORT_NAME, render_html(context))


def screenshot(html_path: str | os.PathLike, png_path: str | os.PathLike, width: int = 1200,
               height: int = 1600, timeout_s: float = 120.0) -> bool:
    """Render a page to PNG with headless Chromium.

    Parameters
    ----------
    html_path : path-like
        A local HTML file.
    png_path : path-like
        Where the PNG goes (written atomically).
    width, height : int
        Window size in CSS pixels; the picture is the top ``height`` pixels of the page.
    timeout_s : float
        Give up after this long.

    Returns
    -------
    bool
        True if the PNG was written; False if no browser is installed or it failed (logged).
    """
    if find_browser() is None:
        return False
    try:
        with Browser(width=int(width), height=int(height), timeout_s=timeout_s) as browser:
            browser.open(html_path)
            # a page with the 3D view: wait until it has drawn (or said why it cannot)
            browser.wait_for("!document.getElementById('s2f-viewer') || (window.s2fViewer && "
                             "(window.s2fViewer.ready || window.s2fViewer.error))", timeout_s=min(60.0, timeout_s))
            data = browser.screenshot()
        with atomic_path(png_path) as tmp:
            tmp.write_bytes(data)
    except (OSError, BrowserError) as exc:
        log.warning("screenshot of %s failed: %s", html_path, exc)
        return False
    return True


__all__ = ["COLUMNS", "REPORT_NAME", "STATEMENT", "metrics_html", "render_html", "screenshot", "write_report"]
