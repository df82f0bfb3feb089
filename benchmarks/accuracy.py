"""Leave-one-head-out accuracy on every clean REAL head: skull2face against every baseline.

For each clean real CT head in turn: build a dataset holding that head out, train, predict its
face from its CT with every method, and measure the distance from its real skin to each
prediction over the same landmark-fixed face region (area-weighted, mm). Prints the table of
each held-out head, then per method the mean +- SD over the held-out heads (RMSE and the share
within 2.5 mm), and per face region.

The clean heads: the two bundled CTs, and the GE clinical series of ``../shared`` when it is
there (upper face only: it has no lips, chin or mandible, so those regions are not scored).
``--extra-ct`` adds training heads that are never held out (e.g. the OpenKBP heads, to
measure whether they help: ``--extra-ct ../shared/data/ct/openkbp_rt/*.nii.gz``).

    python benchmarks/accuracy.py [--quick] [--out runs/accuracy] [--heads NAME ...]
                                  [--shared ../shared/data/ct] [--extra-ct CT ...]

This is `skull2face demo` run once per held-out head.
"""

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from skull2face.dataset.build import head_name
from skull2face.report.tables import metrics_table
from skull2face.stages.demo import DemoSettings, run_demo

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct"
GE = "ge_hispeed_tilted_dicom"


def mean_sd(values: list[float]) -> str:
    v = np.asarray(values, np.float64)
    return f"{v.mean():.2f} +- {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"


def summary_lines(results: dict[str, dict[str, dict]]) -> list[str]:
    """Per method (and per method and region): mean +- SD over held-out heads."""
    methods = sorted({m for per in results.values() for m in per})
    lines = [f"{'method':<14} {'heads':>5} {'RMSE mm (mean +- SD)':>22} {'within 2.5 mm % (mean +- SD)':>30}"]
    for m in methods:
        rows = [per[m] for per in results.values() if m in per]
        lines.append(f"{m:<14} {len(rows):>5} {mean_sd([r['rmse_mm'] for r in rows]):>22} "
                     f"{mean_sd([100 * r['share_within_2.5mm'] for r in rows]):>30}")
    lines.append("\nper face region, RMSE mm (mean +- SD over the heads that have the region):")
    regions = ("forehead", "orbits", "nose", "cheeks", "mouth", "chin")
    lines.append(f"{'method':<14} " + " ".join(f"{r:>14}" for r in regions))
    for m in methods:
        cells = []
        for r in regions:
            vals = [per[m]["regions"][r]["rmse_mm"] for per in results.values()
                    if m in per and r in per[m].get("regions", {})]
            cells.append(f"{mean_sd(vals) if vals else '-':>14}")
        lines.append(f"{m:<14} " + " ".join(cells))
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/accuracy")
    ap.add_argument("--shared", type=Path, default=SHARED, help="the shared data's ct/ folder (for the GE head)")
    ap.add_argument("--heads", nargs="+", default=None,
                    help="held-out heads (default: headsq, cranium_ct0051 and the GE head when present)")
    ap.add_argument("--extra-ct", nargs="*", default=[], help="training-only heads (never held out)")
    args = ap.parse_args()
    base = DemoSettings.quick() if args.quick else DemoSettings()
    clean = [str(args.shared / GE)] if (args.shared / GE).is_dir() else []
    heads = args.heads or ["headsq", "cranium_ct0051"] + [head_name(c) for c in clean]
    rows, results = {}, {}
    for head in heads:
        summary = run_demo(Path(args.out) / head, dataclasses.replace(base, test_head=head,
                                                                      extra_cts=clean + list(args.extra_ct)))
        results[head] = summary["rows"]
        for method, m in summary["rows"].items():
            rows[f"{head}/{method}"] = m
        print(f"\n{head} held out:\n{summary['table']}\nreport: {summary['report']}", flush=True)
    print("\nall held-out heads (truth -> prediction, area-weighted over the face region):")
    print(metrics_table(rows))
    print("\nmean +- SD over the held-out heads:")
    print("\n".join(summary_lines(results)))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "accuracy.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
