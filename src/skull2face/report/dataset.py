"""Pictures of a dataset folder: ``report/samples.png``, random samples of each kind.

(Shaded relief of the depth maps, real samples first; written by ``skull2face dataset build``.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..geometry.depthmap import load_depthmap
from .pictures import hillshade, new_figure, save_png


def sample_grid(root: Path, manifest: dict, per_kind: int = 6, seed: int = 0):
    """A figure of random samples: one row per map kind (paired skull, paired face below it,
    unpaired skull, unpaired face), ``per_kind`` columns; real samples come first."""

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


def write_sample_grid(root: Path, manifest: dict) -> str:
    """Write ``<root>/report/samples.png`` (atomically); returns its path relative to ``root``."""
    save_png(sample_grid(Path(root), manifest), Path(root) / "report" / "samples.png")
    return "report/samples.png"
