"""Plain-text tables for the terminal and logs."""

from __future__ import annotations


def metrics_table(rows: dict[str, dict]) -> str:
    """Plain-text table: one line per method, truth -> prediction distances (mm, area-weighted)."""
    w = max([14, *(len(k) for k in rows)])
    head = (f"{'method':<{w}} {'RMSE':>6} {'mean':>6} {'median':>6} {'p95':>6} {'max':>6} "
            f"{'<1mm':>6} {'<2mm':>6} {'<2.5mm':>7} {'cover':>6}")
    lines = [head, "-" * len(head)]
    for method, m in rows.items():
        def f(key, scale=1.0, width=6, digits=2):
            v = m.get(key)
            return f"{'-':>{width}}" if v is None else f"{scale * v:{width}.{digits}f}"
        lines.append(f"{method:<{w}} {f('rmse_mm')} {f('mean_mm')} {f('median_mm')} {f('p95_mm')} "
                     f"{f('max_mm', digits=1)} {f('share_within_1mm', 100, 5, 0)}% {f('share_within_2mm', 100, 5, 0)}% "
                     f"{f('share_within_2.5mm', 100, 6, 0)}% {f('coverage', 100, 5, 0)}%")
    return "\n".join(lines)
