"""``skull2face demo``: the whole job on the bundled real data, leave-one-head-out.

1. build a dataset from the bundled CTs with one real head held out (``headsq`` by default:
   its face and chin bone are intact), plus the bundled real faces and Surrey model faces;
2. train the cGAN briefly on the CPU (staged, up to ``final_res``);
3. predict the held-out head's face from its CT with skull2face and every baseline;
4. evaluate every prediction against the head's real skin over the same face region;
5. write one HTML report (and ``report.pdf`` where Chromium is installed) and print the
   metrics table and the report's path.

``quick=True`` is a smoke run (tiny dataset, 32 px) that checks the plumbing in ~2 minutes;
its numbers mean nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from .. import samples
from ..errors import InputError
from ..methods import registry
from ..options import check_options, cli_fields, option
from ..report.tables import metrics_table

log = logging.getLogger(__name__)


@dataclass
class DemoSettings:
    """Sizes of the demo run (the defaults fit in ~15 minutes on a 2-core CPU)."""

    test_head: str = option("headsq", help="CT held out, by head name (a bundled one or one of --extra-ct)")
    extra_cts: list[str] = option(default_factory=list, flag="--extra-ct", nargs="*", metavar="CT",
                                  help="more head CTs for the dataset besides the bundled two (files or DICOM "
                                       "folders), e.g. ../shared/data/ct/ge_hispeed_tilted_dicom")
    n_paired: int = 60
    n_skulls: int = 20
    n_sfm: int = 30
    size: int = 256
    schedule: str = "8:2,16:2,32:3,64:3,128:3"
    final_res: int = 128
    batch_size: int = 8
    seed: int = option(0, help="seed of the dataset, the weights and the data order")
    workers: int = option(2, minimum=1, help="dataset build processes")
    samples: int = option(20, minimum=0, help="plausible heads drawn around the default method's face, with its "
                                               "uncertainty map (predict --samples; 0: none)")

    def __post_init__(self) -> None:
        check_options(self)

    @classmethod
    def quick(cls) -> "DemoSettings":
        return cls(n_paired=6, n_skulls=3, n_sfm=4, size=128, schedule="8:1,16:1,32:1", final_res=32,
                   batch_size=4)


def run_demo(out_dir: str | Path = "runs/demo", settings: DemoSettings | None = None, quick: bool = False) -> dict:
    """Run the demo into ``out_dir``; returns a summary with the table and the report path.

    ``quick``: the sizes of `DemoSettings.quick` (a smoke run), keeping ``settings``'
    command-line options (test head, seed, workers).
    """
    from ..io.run_folder import run_folder

    settings = settings or DemoSettings()
    if quick:
        settings = dataclasses.replace(DemoSettings.quick(), **{n: getattr(settings, n) for n in cli_fields(DemoSettings)})

    out = Path(out_dir)
    if (out / "dataset" / "manifest.json").exists():
        raise InputError(out, "already holds a demo run; choose a new --out folder or delete it")
    # claimed in place: each stage inside swaps its own sub-folder in when it is complete
    with run_folder(out, "demo", replace=False):
        return _demo(out, settings)


def _demo(out: Path, settings: DemoSettings) -> dict:
    """`run_demo` into the claimed folder ``out``."""
    from ..dataset.build import DatasetSettings, head_name
    from .dataset import build
    from .evaluate import evaluate
    from .export import calibrate_run, make_bundle
    from .predict import PredictSettings, predict
    from ..report.collect import context_from_dirs
    from ..report.browser import find_browser
    from ..report.html import write_report
    from ..report.pdf import write_pdf
    from .train import TrainSettings, train

    cts = [samples.path("headsq"), samples.path("cranium"), *(Path(c) for c in settings.extra_cts)]
    for c in cts[2:]:
        if not c.exists():
            raise InputError(c, "--extra-ct: not found")
    test_ct = next((c for c in cts if head_name(c) == settings.test_head), None)
    if test_ct is None:
        raise InputError(None, f"--test-head {settings.test_head} is not among the CTs "
                               f"({', '.join(head_name(c) for c in cts)})")
    t0 = time.perf_counter()
    timings = {}

    log.info("1/5 dataset (test head: %s)", settings.test_head)
    ds = DatasetSettings(n_paired=settings.n_paired, n_skulls=settings.n_skulls, n_sfm=settings.n_sfm,
                         test_heads=[settings.test_head], size=settings.size, seed=settings.seed,
                         workers=settings.workers)
    build(out / "dataset", cts, ds)
    timings["dataset_s"] = time.perf_counter() - t0

    log.info("2/5 training")
    t = time.perf_counter()
    ts = TrainSettings(schedule=settings.schedule, final_res=settings.final_res, batch_size=settings.batch_size,
                       seed=settings.seed)
    train(out / "dataset", out / "run", ts)
    # the run's own fold (its held-out head is the one predicted here, so its gains are NOT put
    # into this model file: without other folds the correction is not applied)
    calibrate_run(out / "run", out / "dataset")
    model = make_bundle(out / "run", out / "dataset", out / "run" / "model.pt")
    timings["train_s"] = time.perf_counter() - t

    log.info("3/5 predictions for %s", settings.test_head)
    t = time.perf_counter()
    rows, evals, preds = {}, {}, {}
    for method in registry.names():
        drawn = settings.samples if method == PredictSettings().method else 0  # the headline face's range
        ps = PredictSettings(method=method, model=str(model), data=str(out / "dataset"), samples=drawn)
        preds[method] = predict(test_ct, out / "predict" / method, ps)
    timings["predict_s"] = time.perf_counter() - t

    log.info("4/5 evaluation against the real skin")
    t = time.perf_counter()
    truth = out / "predict" / "skull2face" / "truth_skin.ply"
    for method in registry.names():
        ev = evaluate(out / "predict" / method / "face.ply", truth, out / "evaluate" / method,
                      name=f"{method} on {settings.test_head}")
        evals[method] = ev
        rows[method] = ev["truth_to_prediction"]
    timings["evaluate_s"] = time.perf_counter() - t

    log.info("5/5 report")
    table = metrics_table(rows)
    context = context_from_dirs([out], title=f"skull2face demo: the face of {settings.test_head}, "
                                             "a real head the model never saw",
                                settings={"demo": dataclasses.asdict(settings), "train": dataclasses.asdict(ts)},
                                default_method=PredictSettings().method)
    context["truth_picture"] = None
    report = write_report(out / "report", context)
    pdf = None
    if find_browser() is not None:  # the case-file PDF needs Chromium; the page does not
        pdf = str(write_pdf(out / "report", context))
    else:
        log.warning("no Chromium on PATH: report.pdf not written (the HTML report is)")
    timings["total_s"] = time.perf_counter() - t0
    summary = {"table": table, "rows": rows, "report": str(report), "pdf": pdf, "timings": {k: round(v, 1) for k, v in timings.items()}}
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def echo(summary: dict) -> str:
    """What ``skull2face demo`` prints: the metrics table and where the report is."""
    pdf = f"\npdf: {summary['pdf']}" if summary.get("pdf") else ""
    return f"{summary['table']}\nreport: {summary['report']}{pdf}"
