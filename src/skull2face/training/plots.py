"""The run's ``loss.png``: training losses and validation error vs epoch.

Built on a `matplotlib.figure.Figure` with the Agg canvas: no pyplot, no global state.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..io.atomic import atomic_path


def plot_history(rows: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write ``loss.png``: training losses (log scale) and validation error in mm vs epoch.

    Parameters
    ----------
    rows : list of dict
        ``metrics.jsonl`` lines.
    path : path-like
        PNG to write (atomically).
    """
    fig = history_figure(rows)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)


def history_figure(rows: list[dict[str, Any]]):
    """The figure of `plot_history`: a `matplotlib.figure.Figure` on an Agg canvas, 12 x 4.5 in.

    Left: every training loss (epoch means, log scale); right: the validation MAE and RMSE (mm)
    with the mean-face baseline; dotted lines mark the stages, labelled with their resolution.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    FigureCanvasAgg(fig)
    ax_l, ax_v = fig.subplots(1, 2)
    ep = [r["epoch"] for r in rows]
    for key, label in (("g_total", "G total"), ("g_adv", "G adversarial"), ("l1", "L1 (normalised)"),
                       ("la_mm", "L_A (mm)"), ("mask_bce", "mask BCE"), ("d_cond", "D conditional"),
                       ("d_face", "D face")):
        ys = [r.get(key) for r in rows]
        if any(y is not None and y > 0 for y in ys):
            ax_l.plot(ep, [y if y is not None and y > 0 else np.nan for y in ys], marker=".", label=label)
    ax_l.set_yscale("log")
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("training loss (epoch mean)")
    ax_l.set_title("losses")
    ax_l.legend(fontsize=8)
    vrows = [r for r in rows if r.get("val_mae_mm") is not None]
    if vrows:
        ve = [r["epoch"] for r in vrows]
        ax_v.plot(ve, [r["val_mae_mm"] for r in vrows], marker="o", label="model MAE")
        ax_v.plot(ve, [r["val_rmse_mm"] for r in vrows], marker="s", label="model RMSE")
        base = vrows[-1]
        if base.get("baseline_mae_mm") is not None:
            ax_v.axhline(base["baseline_mae_mm"], ls="--", c="C0", alpha=0.6, label="mean-face MAE")
            ax_v.axhline(base["baseline_rmse_mm"], ls="--", c="C1", alpha=0.6, label="mean-face RMSE")
        ax_v.set_ylabel("face height error on held-out real head(s) (mm)")
        ax_v.legend(fontsize=8)
    else:
        ax_v.text(0.5, 0.5, "no real held-out head: no validation", ha="center", transform=ax_v.transAxes)
    ax_v.set_xlabel("epoch")
    ax_v.set_title("validation (at final resolution)")
    # Stage boundaries, labelled with the stage's resolution.
    last_res = None
    for r in rows:
        if r.get("res") != last_res:
            last_res = r.get("res")
            for ax in (ax_l, ax_v):
                ax.axvline(r["epoch"] - 0.5, c="grey", lw=0.8, ls=":")
                ax.text(r["epoch"] - 0.4, 0.01, f"{last_res}²", transform=ax.get_xaxis_transform(),
                        fontsize=8, va="bottom", color="grey")
    fig.tight_layout()
    return fig


__all__ = ["history_figure", "plot_history"]
