"""The dataset's statistics: the heads' quality and the population's tissue thickness.

``report/heads.md`` (and ``heads.json``): one row per CT head with its quality-gate status
(used / partial / rejected, `skull2face.dataset.quality`), voxel size, excluded regions, the
reasons and the key measures. ``report/thickness.json``: the synthetic population's
bone-to-skin thickness at each landmark site next to the published mean and SD it was drawn
from (Hona & Stephan 2024).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..anatomy.tissue import thickness_for
from ..io.atomic import write_json, write_text

#: Key measures shown in the head table: (column title, measure key, format).
_KEY_MEASURES = (("top cm2", "top_slice_skin_cm2", "{:.0f}"), ("metal vox", "dental_metal_voxels", "{:d}"),
                 ("shell", "shell_fraction", "{:.2f}"), ("fov above n", "fov_above_n_mm", "{:.0f}"))


def head_rows(heads: dict) -> list[list[str]]:
    """One row per head: name, spacing, status, excluded regions, reasons, key measures."""
    rows = []
    for name, h in heads.items():
        q = h.get("quality") or {}
        m = q.get("measures", {})
        sp = h.get("spacing_mm") or m.get("spacing_mm") or []
        vals = []
        for _title, key, fmt in _KEY_MEASURES:
            v = m.get(key)
            vals.append(fmt.format(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-")
        rows.append([name, "x".join(f"{v:.2f}" for v in sp), q.get("status", "?"), ", ".join(q.get("excluded", [])) or "-",
                     "; ".join(q.get("reasons", [])) or "-", *vals])
    return rows


def head_table(heads: dict) -> str:
    """The per-head status table as Markdown (also what the build logs and prints)."""
    titles = ["head", "spacing mm", "status", "excluded regions", "reasons", *(t for t, _k, _f in _KEY_MEASURES)]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in head_rows(heads)]
    counts: dict[str, int] = {}
    for h in heads.values():
        st = (h.get("quality") or {}).get("status", "?")
        counts[st] = counts.get(st, 0) + 1
    return "\n".join(lines + ["", "heads: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))])


def thickness_table(draws: list[dict]) -> dict:
    """Population mean/SD of achieved thickness per site against the published table."""
    sites: dict[str, list] = {}
    for d in draws:
        for name, v in d.items():
            if v is not None and np.isfinite(v):
                sites.setdefault(name, []).append(float(v))
    out = {}
    for name, vals in sorted(sites.items()):
        pub = thickness_for(name)
        a = np.array(vals)
        out[name] = {"n": int(a.size), "population_mean_mm": round(float(a.mean()), 3),
                     "population_sd_mm": round(float(a.std(ddof=1)) if a.size > 1 else 0.0, 3),
                     "published_mean_mm": pub.mean_mm, "published_sd_mm": pub.sd_mm,
                     "published_site": f"{pub.bone}->{pub.soft}"}
    return out


def write_report(root: Path, thickness_draws: list[dict], heads: dict | None = None) -> dict:
    """Write ``report/thickness.json`` and (with ``heads``, the manifest's) ``report/heads.md``
    and ``report/heads.json``; return their summary (the picture of samples is the dataset
    stage's: `skull2face.report.dataset.write_sample_grid`)."""
    extra = {}
    if heads is not None:
        write_text(root / "report" / "heads.md", "# Heads of the dataset: quality gate\n\n" + head_table(heads) + "\n")
        write_json(root / "report" / "heads.json", {n: {"spacing_mm": h.get("spacing_mm"), **(h.get("quality") or {})}
                                                  for n, h in heads.items()})
        extra = {"heads_md": "report/heads.md", "heads_json": "report/heads.json"}
    table = thickness_table(thickness_draws)
    write_json(root / "report" / "thickness.json", {
        "what": "bone-to-skin distance at landmark sites over the synthetic paired population, "
                "against the published table it was drawn from (Hona & Stephan 2024)",
        "sites": table})
    return {"thickness_json": "report/thickness.json", "sites": len(table), **extra}
