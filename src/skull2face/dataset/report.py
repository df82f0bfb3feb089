"""The dataset's statistics: the population's tissue thickness against the published table.

``report/thickness.json``: the synthetic population's bone-to-skin thickness at each landmark
site next to the published mean and SD it was drawn from (Hona & Stephan 2024).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..anatomy.tissue import thickness_for
from ..io.atomic import write_json


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


def write_report(root: Path, thickness_draws: list[dict]) -> dict:
    """Write ``report/thickness.json``; return its summary (the picture of samples is the
    dataset stage's: `skull2face.report.dataset.write_sample_grid`)."""
    table = thickness_table(thickness_draws)
    write_json(root / "report" / "thickness.json", {
        "what": "bone-to-skin distance at landmark sites over the synthetic paired population, "
                "against the published table it was drawn from (Hona & Stephan 2024)",
        "sites": table})
    return {"thickness_json": "report/thickness.json", "sites": len(table)}
