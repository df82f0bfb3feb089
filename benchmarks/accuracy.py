"""Leave-one-head-out accuracy on every clean REAL head: skull2face against every baseline.

For each clean real CT head in turn: build a dataset holding that head out, train, predict its
face from its CT with every method, and measure the distance from its real skin to each
prediction over the same landmark-fixed face region (area-weighted, mm). Prints the table of
each held-out head, then per method the mean +- SD over the held-out heads (RMSE and the share
within 2.5 mm), and per face region.

The clean heads: the two bundled CTs. The GE clinical series (``../shared/data/ct/
ge_hispeed_tilted_dicom``) is read and extracted, but no skull landmarks are found on it (its
first tilted slice cuts the nasal aperture open), so it can be neither held out nor trained on
yet: ``--heads ge_hispeed_tilted_dicom --extra-ct ../shared/data/ct/ge_hispeed_tilted_dicom``
tries it. ``--extra-ct`` adds training heads that are never held out unless named in
``--heads`` (e.g. the OpenKBP heads: ``--extra-ct ../shared/data/ct/openkbp_rt/*.nii.gz``).

    python benchmarks/accuracy.py [--quick] [--out runs/accuracy] [--heads NAME ...] [--extra-ct CT ...] [--reuse]

This is `skull2face demo` run once per held-out head; each run is a leave-one-head-out fold
and writes its ``run/calibration.json`` (`skull2face calibrate`). Then, for every held-out head,
skull2face is scored three ways on that head: ``skull2face`` as the demo ran it (its model file
has no folds, so no correction is trusted: the fit), ``skull2face-cv`` with the per-region gains
chosen on the OTHER heads' folds only (`skull2face export --folds`; the head scored never chose
its own gains), and ``skull2face-raw`` with the full correction (``--correction-gain 1``, the
paper's network unshrunk: the ablation).
"""

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from skull2face.report.tables import metrics_table
from skull2face.stages.demo import DemoSettings, run_demo
from skull2face.stages.evaluate import evaluate
from skull2face.stages.export import ExportSettings, make_bundle
from skull2face.stages.predict import PredictSettings, predict



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


def cross_validated(out: Path, heads: list[str], results: dict, rows: dict) -> None:
    """Score skull2face on each head with gains from the other heads' folds, and unshrunk."""
    for head in heads:
        demo = out / head
        others = [str(out / h / "run" / "calibration.json") for h in heads if h != head]
        model = make_bundle(demo / "run", demo / "dataset", demo / "run" / "model_cv.pt", ExportSettings(folds=others))
        ct = json.loads((demo / "predict" / "skull2face" / "predict.json").read_text())["input"]["path"]
        truth = demo / "predict" / "skull2face" / "truth_skin.ply"
        for name, gain, m in (("skull2face-cv", None, model), ("skull2face-raw", 1.0, demo / "run" / "model.pt")):
            pred = predict(ct, demo / "predict" / name, PredictSettings(method="skull2face", model=str(m),
                                                                         data=str(demo / "dataset"),
                                                                         correction_gain=gain))
            ev = evaluate(demo / "predict" / name / "face.ply", truth, demo / "evaluate" / name,
                          name=f"{name} on {head}")
            results[head][name] = ev["truth_to_prediction"]
            rows[f"{head}/{name}"] = ev["truth_to_prediction"]
            print(f"{head} {name}: gains {pred['method_info']['correction']['gains']} "
                  f"({pred['method_info']['correction']['gains_from']}); RMSE "
                  f"{ev['truth_to_prediction']['rmse_mm']:.2f} mm", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="runs/accuracy")
    ap.add_argument("--heads", nargs="+", default=["headsq", "cranium_ct0051"], help="held-out heads")
    ap.add_argument("--extra-ct", nargs="*", default=[], help="training-only heads (never held out)")
    ap.add_argument("--reuse", action="store_true", help="keep finished folds (OUT/HEAD/demo.json); redo the rest")
    args = ap.parse_args()
    base = DemoSettings.quick() if args.quick else DemoSettings()
    rows, results = {}, {}
    for head in args.heads:
        done = Path(args.out) / head / "demo.json"
        if args.reuse and done.exists():  # a finished fold: only the cross-validated skull2face is redone
            summary = json.loads(done.read_text(encoding="utf-8"))
        else:
            summary = run_demo(Path(args.out) / head, dataclasses.replace(base, test_head=head,
                                                                          extra_cts=list(args.extra_ct)))
        results[head] = summary["rows"]
        for method, m in summary["rows"].items():
            rows[f"{head}/{method}"] = m
        print(f"\n{head} held out:\n{summary['table']}\nreport: {summary['report']}", flush=True)
    cross_validated(Path(args.out), args.heads, results, rows)
    print("\nall held-out heads (truth -> prediction, area-weighted over the face region):")
    print(metrics_table(rows))
    print("\nmean +- SD over the held-out heads:")
    print("\n".join(summary_lines(results)))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "accuracy.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
