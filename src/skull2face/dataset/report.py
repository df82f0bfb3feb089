"""The dataset's statistics report: a picture grid of samples and a thickness comparison.

``report/samples.png``: random samples of each kind (shaded relief of the depth maps).
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


def sample_grid(root: Path, manifest: dict, per_kind: int = 6, seed: int = 0):
    """A figure of random samples: one row per map kind (paired skull, paired face below it,
    unpaired skull, unpaired face), ``per_kind`` columns; real samples come first."""
    from ..geometry.depthmap import load_depthmap
    from ..report.pictures import hillshade, new_figure

    rng = np.random.default_rng(seed)

    def pick(kind):
        pool = [s for s in manifest["samples"] if s["kind"] == kind]
        real = [s for s in pool if s["real"]][:3]
        rest = [s for s in pool if not s["real"]]
        order = rng.permutation(len(rest))[: max(0, per_kind - len(real))]
        return real + [rest[i] for i in order]

    paired = pick("paired")
    rows = [("paired: skull", paired, "skull"), ("paired: face", paired, "face"),
            ("unpaired skull", pick("unpaired-skull"), "skull"), ("unpaired face", pick("unpaired-face"), "face")]
    fig = new_figure((2.1 * per_kind, 2.4 * len(rows)))
    axes = fig.subplots(len(rows), per_kind, squeeze=False)
    for (label, chosen, surface), ax_row in zip(rows, axes):
        ax_row[0].set_ylabel(label)
        for j, ax in enumerate(ax_row):
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j >= len(chosen) or not chosen[j]["files"].get(surface):
                continue
            s = chosen[j]
            dm = load_depthmap(root / s["files"][surface])
            ax.imshow(hillshade(dm.height, dm.spec.mm_per_px), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{s['id']}\n{'real' if s['real'] else 'synthetic'}, {s['split']}", fontsize=6)
        ax_row[0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    return fig


def write_report(root: Path, manifest: dict, thickness_draws: list[dict]) -> dict:
    """Write ``report/samples.png`` and ``report/thickness.json``; return their summary."""
    from ..report.pictures import save_png

    table = thickness_table(thickness_draws)
    write_json(root / "report" / "thickness.json", {
        "what": "bone-to-skin distance at landmark sites over the synthetic paired population, "
                "against the published table it was drawn from (Hona & Stephan 2024)",
        "sites": table})
    save_png(sample_grid(root, manifest), root / "report" / "samples.png")
    return {"samples_png": "report/samples.png", "thickness_json": "report/thickness.json",
            "sites": len(table)}
