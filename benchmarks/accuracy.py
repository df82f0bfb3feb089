"""Leave-one-head-out accuracy on the bundled REAL heads: skull2face against every baseline.

For each real CT head in turn: build a dataset holding that head out, train, predict its
face from its CT with every method, and measure the distance from its real skin to each
prediction over the same landmark-fixed face region (area-weighted, mm). Prints one table.

    python benchmarks/accuracy.py [--quick] [--out runs/accuracy]

This is `skull2face demo` run once per held-out head.
"""

import argparse
from pathlib import Path

from skull2face.report.tables import metrics_table
from skull2face.stages.demo import DemoSettings, run_demo


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/accuracy")
    ap.add_argument("--heads", nargs="+", default=["headsq", "cranium_ct0051"])
    args = ap.parse_args()
    base = DemoSettings.quick() if args.quick else DemoSettings()
    rows = {}
    for head in args.heads:
        import dataclasses

        summary = run_demo(Path(args.out) / head, dataclasses.replace(base, test_head=head))
        for method, m in summary["rows"].items():
            rows[f"{head}/{method}"] = m
        print(f"\n{head} held out:\n{summary['table']}\nreport: {summary['report']}")
    print("\nall held-out heads (truth -> prediction, area-weighted over the face region):")
    print(metrics_table(rows))


if __name__ == "__main__":
    main()
