"""The report's provenance in plain tables: settings, input hashes, the model card, the tissue
table, the face region and the per-region errors. Raw JSON only behind a collapsed ``<details>``.

Every function returns an HTML fragment; all text from the context is escaped.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping
from typing import Any


def e(value: Any) -> str:
    """HTML-escaped text of a value."""
    return html.escape(str(value), quote=True)


def words(key: str) -> str:
    """A setting's key in words: ``mm_per_px`` -> ``mm per px``."""
    # a dot between digits is a decimal point ("within_2.5mm"), elsewhere a nesting ("train.lr")
    return re.sub(r"(?<!\d)\.|\.(?!\d)", ": ", str(key)).replace("_", " ")


def fmt(value: Any) -> str:
    """A value for a table cell: numbers shortly, lists joined, None as a dash."""
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mappings as (dotted key, value) rows, in order."""
    rows = []
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            rows.extend(flatten(v, key))
        else:
            rows.append((key, v))
    return rows


def table(rows: list[tuple[Any, Any]], head: tuple[str, str] | None = None, cls: str = "kv") -> str:
    """A two-column table of (label, value) rows; labels in words, values formatted."""
    out = [f'<table class="{e(cls)}">']
    if head:
        out.append(f'<thead><tr><th class="name">{e(head[0])}</th><th class="name">{e(head[1])}</th></tr></thead>')
    out.append("<tbody>")
    for k, v in rows:
        out.append(f'<tr><td class="name">{e(words(k))}</td><td class="name">{e(fmt(v))}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def raw_json(data: Any, summary: str = "raw JSON") -> str:
    """The data as pretty JSON inside a collapsed ``<details>`` element."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return f"<details><summary>{e(summary)}</summary><pre>{e(text)}</pre></details>"


def settings_html(settings: Mapping[str, Any]) -> str:
    """The settings as one table per group (top-level key), then the raw JSON collapsed."""
    parts = []
    loose = [(k, v) for k, v in settings.items() if not isinstance(v, Mapping)]
    if loose:
        parts.append(table(loose, ("setting", "value")))
    for group, value in settings.items():
        if isinstance(value, Mapping):
            parts.append(f"<h3>{e(words(group))}</h3>" + table(flatten(value), ("setting", "value")))
    return "".join(parts) + raw_json(settings, "settings as JSON")


def hashes_html(hashes: Mapping[str, Any]) -> str:
    """Input label -> SHA-256 (a string or a mapping with ``sha256``)."""
    rows = []
    for label, value in hashes.items():
        if isinstance(value, Mapping):
            value = value.get("sha256", "")
        rows.append(f'<tr><td class="name">{e(label)}</td><td class="name hash">{e(value or "-")}</td></tr>')
    return ('<table class="hashes"><thead><tr><th class="name">input</th><th class="name">SHA-256</th></tr></thead>'
            "<tbody>" + "\n".join(rows) + "</tbody></table>")


def model_card_html(card: Mapping[str, Any]) -> str:
    """The model card: what the model is, what data trained it, how it scored in validation.

    ``card`` keys (all optional): ``file``, ``sha256``, ``about`` (str), ``trained`` (mapping),
    ``training_data`` (mapping), ``validation`` (mapping), ``settings`` (mapping, collapsed).
    """
    parts = []
    if card.get("about"):
        parts.append(f'<p class="explain">{e(card["about"])}</p>')
    head = [("file", card.get("file")), ("sha256", card.get("sha256"))]
    parts.append(table([r for r in head if r[1]] + list((card.get("trained") or {}).items()), ("model", "")))
    if card.get("training_data"):
        parts.append("<h3>training data</h3>" + table(list(card["training_data"].items()), ("what", "")))
    if card.get("validation"):
        parts.append("<h3>validation during training</h3>" + table(list(card["validation"].items()), ("figure", "value")))
    if card.get("settings"):
        parts.append(raw_json(card["settings"], "training settings as JSON"))
    return "".join(parts)


def tissue_html(rows: list[Any], source: str) -> str:
    """The soft-tissue thickness table (`skull2face.anatomy.tissue.Thickness` rows)."""
    out = [f'<p class="explain">{e(source)}</p><table class="tissue"><thead><tr>'
           '<th class="name">bone landmark</th><th class="name">skin landmark</th><th class="name">side</th>'
           '<th>mean<br><small>mm</small></th><th>SD<br><small>mm</small></th>'
           '<th class="name">used for (paper Table 1)</th></tr></thead><tbody>']
    for t in rows:
        used = ", ".join(t.paper_landmarks) + (f" ({t.stand_in_note})" if t.stand_in_note else "")
        out.append(f'<tr><td class="name">{e(t.bone)}</td><td class="name">{e(t.soft)}</td><td class="name">{e(t.side)}</td>'
                   f"<td>{t.mean_mm:.1f}</td><td>{t.sd_mm:.1f}</td><td class=\"name\">{e(used or '-')}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def region_html(region: Mapping[str, Any]) -> str:
    """The measured face region in words: its definition, bounds (with rules), sub-regions."""
    parts = []
    if region.get("definition"):
        parts.append(f'<p class="explain">{e(region["definition"])}</p>')
    bounds = region.get("bounds_head_mm") or {}
    rows = [(k, f"{fmt(v)} mm" + (f"  ({bounds[k + '_rule']})" if f"{k}_rule" in bounds else ""))
            for k, v in bounds.items() if not k.endswith("_rule")]
    if rows:
        parts.append("<h3>bounds in the head frame</h3>" + table(rows, ("bound", "value (rule)")))
    subs = region.get("subregions") or {}
    if subs:
        parts.append("<h3>sub-regions</h3>" + table(list(subs.items()), ("sub-region", "rule (head frame, mm)")))
    extra = [("landmarks missing", region.get("landmarks_missing") or "none")]
    extra += [(f"assumed: {k}", f"{fmt(v)} mm") for k, v in (region.get("assumed") or {}).items()]
    parts.append(table(extra))
    return "".join(parts) + raw_json(region, "face region as JSON")


#: Per-region table columns: (key, header, unit, scale).
REGION_COLUMNS = (("area_mm2", "area", "cm\u00b2", 0.01), ("rmse_mm", "RMSE", "mm", 1.0),
                  ("mean_mm", "mean", "mm", 1.0), ("signed_mean_mm", "signed mean", "mm", 1.0),
                  ("p95_mm", "p95", "mm", 1.0), ("share_within_2.5mm", "within 2.5 mm", "%", 100.0))


def regions_html(regions: Mapping[str, Mapping[str, Any]]) -> str:
    """Per-region errors (truth -> prediction): one row per sub-region present."""
    head = "".join(f"<th>{e(h)}<br><small>{e(u)}</small></th>" for _k, h, u, _s in REGION_COLUMNS)
    out = [f'<table class="regions"><thead><tr><th class="name">region</th>{head}</tr></thead><tbody>']
    for name, m in regions.items():
        cells = []
        for key, _h, _u, scale in REGION_COLUMNS:
            v = m.get(key)
            ok = isinstance(v, (int, float)) and math.isfinite(v)
            cells.append(f"<td>{(f'{scale * v:.0f}' if scale != 1.0 else f'{v:.2f}') if ok else '&ndash;'}</td>")
        out.append(f'<tr><td class="name">{e(name)}</td>{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    return "".join(out)


__all__ = ["REGION_COLUMNS", "e", "flatten", "fmt", "hashes_html", "model_card_html", "raw_json", "region_html",
           "regions_html", "settings_html", "table", "tissue_html", "words"]
