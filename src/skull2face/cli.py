"""The ``skull2face`` command: one thin subcommand per pipeline stage.

Each subcommand parses its options, calls the stage function, and prints where the outputs
went. Bad input ends with a one-line error naming the file and the problem (exit status 2),
never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .errors import InputError

log = logging.getLogger("skull2face")


def _add_extract(sub) -> None:
    p = sub.add_parser("extract", help="head CT/MR volume -> skull and skin meshes (mm, LPS)",
                       description="Extract the outer skin and the skull (cranium + mandible) of a head "
                                   "volume as meshes in the volume's own LPS millimetre coordinates.")
    p.add_argument("volume", help="DICOM series folder, or a .nii/.nii.gz/.nrrd/.mha/.mhd file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--skin-threshold", type=float, default=None, help="skin iso-value (default -300 HU)")
    p.add_argument("--bone-threshold", type=float, default=None, help="bone iso-value (default 300 HU)")
    p.add_argument("--intensity", choices=("hu", "raw"), default="hu",
                   help="'raw' for volumes not in HU (uint8 exports, MR): automatic thresholds unless given")
    p.add_argument("--skin-only", action="store_true", help="extract the skin only (MR heads)")
    p.add_argument("--opening", type=int, default=2, metavar="VOXELS",
                   help="opening that cuts the head free of table/holder (default 2)")
    p.add_argument("--smooth", type=int, default=0, metavar="N", help="Taubin smoothing iterations (default 0)")
    p.add_argument("--target-faces", type=int, default=None, metavar="N",
                   help="decimate each mesh to about N triangles")
    p.add_argument("--no-picture", action="store_true", help="skip extract.png")
    p.set_defaults(func=_run_extract)


def _run_extract(args) -> int:
    from .stages.extract import extract
    from .geometry.surfaces import SurfaceSettings

    settings = SurfaceSettings(skin_threshold=args.skin_threshold, bone_threshold=args.bone_threshold,
                               intensity=args.intensity, opening_voxels=args.opening,
                               skin_only=args.skin_only, smooth_iterations=args.smooth,
                               target_faces=args.target_faces)
    rec = extract(args.volume, args.out, settings, picture=not args.no_picture)
    print(f"wrote {', '.join(rec['outputs'].values())} and extract.json to {args.out}")
    return 0


def _add_pose_options(p) -> None:
    g = p.add_argument_group("coarse pose (before landmarks are known)")
    g.add_argument("--pose", choices=("auto", "lps", "scan"), default="auto",
                   help="'lps': mesh in a CT's LPS mm (as extract writes); 'scan': unknown pose, found from "
                        "symmetry and shape; 'auto' (default): lps when extract.json sits beside the mesh")
    g.add_argument("--front", default=None, metavar="AXIS",
                   help="where the face looks, in the mesh's coordinates: +x, -y, ... or 'a,b,c'")
    g.add_argument("--up", default=None, metavar="AXIS", help="the top of the head, like --front")


def _pose_settings(args):
    from .stages.landmarks import PoseSettings

    return PoseSettings(pose=args.pose, front=args.front, up=args.up)


def _add_landmarks(sub) -> None:
    p = sub.add_parser("landmarks", help="detect (or check given) landmarks on a skull or face mesh",
                       description="Locate the paper's Table 1 (skull) or Table 2 (face) landmarks on a mesh. "
                                   "Given landmarks always win; the rest are detected; landmarks that cannot "
                                   "exist on the input (e.g. a chin on a CT cut at the lip) are reported missing.")
    p.add_argument("mesh", help="skull or face mesh (PLY/OBJ/STL/OFF/GLB, mm)")
    p.add_argument("--surface", choices=("skull", "face"), default=None,
                   help="default: from the file name (skull*, skin*/face*)")
    p.add_argument("--landmarks", default=None, metavar="FILE",
                   help="given landmarks: JSON, Slicer .mrk.json/.fcsv, MeshLab .pp or CSV")
    p.add_argument("--out", default=None, metavar="FILE.json", help="write the landmarks (canonical JSON)")
    _add_pose_options(p)
    p.set_defaults(func=_run_landmarks)


def _run_landmarks(args) -> int:
    from .stages.landmarks import find_landmarks, summary, table

    lms = find_landmarks(args.mesh, args.out, args.surface, args.landmarks, _pose_settings(args))
    print(table(lms))
    print(f"{summary(lms)}" + (f"; wrote {args.out}" if args.out else ""))
    return 0


def _add_render(sub) -> None:
    p = sub.add_parser("render", help="skull and/or face meshes -> depth maps in one head frame",
                       description="Render orthographic depth maps (float32 mm + mask + render spec + preview) of "
                                   "one or two meshes in the head frame placed from the FIRST mesh's landmarks, "
                                   "e.g. skull.ply skin.ply from extract.")
    p.add_argument("meshes", nargs="+", help="one skull and/or one face mesh; the first defines the frame")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--landmarks", nargs="+", default=None, metavar="FILE",
                   help="given landmark files, one per mesh in the same order ('-' for none)")
    p.add_argument("--surface", nargs="+", default=None, choices=("skull", "face"),
                   help="surface of each mesh (default: from the file names)")
    p.add_argument("--size", type=int, default=256, help="map side in pixels (default 256)")
    p.add_argument("--mm-per-px", type=float, default=1.0, help="pixel pitch in mm (default 1.0)")
    p.add_argument("--no-picture", action="store_true", help="skip render.png")
    _add_pose_options(p)
    p.set_defaults(func=_run_render)


def _run_render(args) -> int:
    from .stages.render import RenderSettings, render_meshes

    lm = [None if f in (None, "-") else f for f in (args.landmarks or [])]
    settings = RenderSettings(size=args.size, mm_per_px=args.mm_per_px, pose=_pose_settings(args))
    rec = render_meshes(args.meshes, args.out, lm, args.surface, settings, picture=not args.no_picture)
    for it in rec["items"]:
        print(f"{it['surface']}: {it['valid_pixels']} valid pixels; landmarks {it['landmarks']}")
    print(f"wrote depth maps, landmarks, frame.json, render.json{', render.png' if not args.no_picture else ''} "
          f"to {args.out}")
    return 0


def _add_depth2mesh(sub) -> None:
    p = sub.add_parser("depth2mesh", help="a depth map back to a mesh in the input's own coordinates")
    p.add_argument("map", help="depth map (.npz with its .json spec beside it)")
    p.add_argument("--out", required=True, metavar="MESH", help="output mesh (.ply/.obj/.stl/.off/.glb)")
    p.add_argument("--max-jump", type=float, default=None, metavar="MM",
                   help="no triangle spans a depth jump larger than this (default 5 pixels)")
    p.set_defaults(func=_run_depth2mesh)


def _run_depth2mesh(args) -> int:
    from .stages.render import depth2mesh

    rec = depth2mesh(args.map, args.out, args.max_jump)
    print(f"wrote {args.out}: {rec['vertices']} vertices, {rec['faces']} triangles")
    return 0


def _add_dataset(sub) -> None:
    p = sub.add_parser("dataset", help="build the training dataset (real pairs, synthetic population, unpaired sets)")
    dsub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    b = dsub.add_parser("build", help="real head CTs + real faces -> dataset folder",
                        description="Build a C2F-style dataset: one real pair per CT, synthetic pairs grown from "
                                    "each real head (shape warps + published tissue thickness), unpaired skulls, "
                                    "unpaired faces (bundled real MRI skins and face scans, then Surrey Face Model "
                                    "samples), split by source head, with a statistics report.")
    b.add_argument("--ct", nargs="+", default=None, metavar="CT",
                   help="head CT volumes (default: both bundled real CTs)")
    b.add_argument("--out", required=True, help="new output folder")
    b.add_argument("--test-head", nargs="*", default=None, metavar="NAME",
                   help="head(s) held out as the test split, by CT file stem (default: headsq when bundled)")
    b.add_argument("--n-paired", type=int, default=100, help="synthetic pairs per CT head (default 100)")
    b.add_argument("--n-skulls", type=int, default=30, help="unpaired skulls per CT head (default 30)")
    b.add_argument("--n-sfm", type=int, default=40, help="Surrey Face Model faces (default 40)")
    b.add_argument("--no-real-faces", action="store_true", help="leave out the bundled real MRI/scan faces")
    b.add_argument("--size", type=int, default=256, help="map side in pixels (default 256)")
    b.add_argument("--mm-per-px", type=float, default=1.0, help="pixel pitch in mm (default 1.0)")
    b.add_argument("--shape-amplitude", type=float, default=1.0, help="warp size in population SDs (default 1)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    b.set_defaults(func=_run_dataset_build)


def _run_dataset_build(args) -> int:
    from . import samples
    from .dataset.build import DatasetSettings, build_dataset, head_name

    cts = args.ct or [str(samples.path("headsq")), str(samples.path("cranium"))]
    test = args.test_head
    if test is None:
        test = ["headsq"] if "headsq" in [head_name(c) for c in cts] else []
    settings = DatasetSettings(n_paired=args.n_paired, n_skulls=args.n_skulls, n_sfm=args.n_sfm,
                               real_faces=not args.no_real_faces, test_heads=list(test), size=args.size,
                               mm_per_px=args.mm_per_px, shape_amplitude=args.shape_amplitude, seed=args.seed,
                               workers=args.workers)
    man = build_dataset(cts, args.out, settings)
    counts: dict[str, int] = {}
    for s in man["samples"]:
        counts[f"{s['kind']} ({s['split']})"] = counts.get(f"{s['kind']} ({s['split']})", 0) + 1
    for k, v in sorted(counts.items()):
        print(f"{v:6d}  {k}")
    print(f"wrote {len(man['samples'])} samples, manifest.json, dataset.json and report/ to {args.out}")
    return 0


def _add_train(sub) -> None:
    from .stages.train import add_train_arguments

    p = sub.add_parser("train", help="train the skull2face cGAN on a dataset folder (staged resolution)",
                       description="Staged cGAN training (8x8 doubling to the final resolution): paired samples "
                                   "with cGAN + L1, unpaired skulls with the anthropological loss, unpaired faces "
                                   "for a face discriminator. Writes metrics.jsonl, loss.png, train.json, last.pt, "
                                   "best.pt. Under torchrun: torchrun --nproc_per_node=N -m skull2face.stages.train ...")
    p.add_argument("--data", required=True, help="dataset folder (skull2face dataset build)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its last.pt")
    add_train_arguments(p)
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from .stages.train import settings_from_args, train

    rec = train(args.data, args.out, settings_from_args(args), resume=args.resume)
    best = rec.get("best") if isinstance(rec, dict) else None
    print(f"wrote checkpoints, metrics.jsonl, loss.png and train.json to {args.out}"
          + (f"; best validation {best}" if best else ""))
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="a training run -> one model file (generator + baseline references)",
                       description="Write the run's best generator with the mean training face and reference "
                                   "training pairs (for --method mean-face / nearest-skull) into one file that "
                                   "`predict --model` reads.")
    p.add_argument("run", help="training run folder")
    p.add_argument("--data", required=True, help="the dataset the run trained on")
    p.add_argument("--out", required=True, metavar="MODEL.pt")
    p.set_defaults(func=_run_export)


def _run_export(args) -> int:
    from pathlib import Path

    from .stages.predict import make_bundle

    path = make_bundle(args.run, args.data, args.out)
    print(f"wrote {path} ({Path(path).stat().st_size / 1e6:.1f} MB)")
    return 0


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="skull mesh or head CT -> face mesh (PLY/STL/OBJ, input coordinates)",
                       description="Predict the face of a skull. INPUT is a skull mesh (landmarks given or detected) "
                                   "or a head CT (extracted first; its skin is kept as truth_skin.ply). Writes "
                                   "face.ply/.stl/.obj in the input's own millimetre coordinates, the face and skull "
                                   "depth maps with their spec, predict.png and predict.json.")
    p.add_argument("input", help="skull mesh (PLY/OBJ/STL/OFF/GLB) or head CT (DICOM folder, NIfTI, NRRD, MHA)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", choices=("skull2face", "tissue-depth", "mean-face", "nearest-skull"),
                   default="skull2face", help="skull2face (the cGAN) or a classic baseline")
    p.add_argument("--model", default=None, help="model file or run folder (default: the bundled model)")
    p.add_argument("--data", default=None, help="dataset folder for the mean-face / nearest-skull references")
    p.add_argument("--landmarks", default=None, metavar="FILE", help="given skull landmarks (they win)")
    _add_pose_options(p)
    p.set_defaults(func=_run_predict)


def _run_predict(args) -> int:
    from .stages.predict import PredictSettings, predict

    settings = PredictSettings(method=args.method, model=args.model, data=args.data, pose=_pose_settings(args))
    rec = predict(args.input, args.out, settings, args.landmarks)
    print(f"{args.method}: face with {rec['face']['vertices']} vertices in {rec['timings']['total_s']:.2f} s; "
          f"wrote {', '.join(rec['outputs'].values())} and predict.json to {args.out}")
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="surface-to-surface error of a predicted face against the true skin",
                       description="Errors (mm) in both directions over a face region fixed by the truth's "
                                   "landmarks: RMSE, mean, median, p95, max, share within 1/2/2.5 mm, per region; "
                                   "writes evaluate.json, error_on_truth.ply and heatmap.png.")
    p.add_argument("--pred", required=True, help="predicted face mesh")
    p.add_argument("--truth", required=True, help="true skin mesh (e.g. from extract)")
    p.add_argument("--landmarks", default=None, metavar="FILE", help="face landmarks of the truth (else detected)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    from .stages.demo import metrics_table
    from .stages.evaluate import evaluate

    rec = evaluate(args.pred, args.truth, args.out, args.landmarks)
    print(metrics_table({"prediction": rec["truth_to_prediction"]}))
    print(f"wrote evaluate.json, error_on_truth.ply and heatmap.png to {args.out}")
    return 0


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page from predict/evaluate folders or a demo run",
                       description="Gather predictions and evaluations (a demo run folder, or any predict/ and "
                                   "evaluate/ folders) into report.html: pictures, error heat maps, the metrics table "
                                   "of every method, settings and input hashes. Opens offline.")
    p.add_argument("dirs", nargs="+", metavar="RUN_OR_DIR", help="demo run folder, predict or evaluate folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--title", default=None)
    p.add_argument("--screenshot", action="store_true", help="also write report.png with headless Chromium")
    p.set_defaults(func=_run_report)


def _run_report(args) -> int:
    from pathlib import Path

    from .stages.demo import metrics_table
    from .report.collect import context_from_dirs
    from .report.html import screenshot, write_report

    ctx = context_from_dirs(args.dirs, title=args.title)
    page = write_report(args.out, ctx)
    rows = {m: v["metrics"] for m, v in ctx["methods"].items() if v.get("metrics")}
    if rows:
        print(metrics_table(rows))
    if args.screenshot:
        shot = Path(args.out) / "report.png"
        print(f"screenshot: {shot}" if screenshot(page, shot) else "screenshot: no Chromium found")
    print(f"report: {page}")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the whole job on the bundled real data (leave one head out) with a report",
                       description="Build a dataset from the bundled CTs holding one real head out, train briefly on "
                                   "the CPU, predict the held-out face with skull2face and every baseline, evaluate "
                                   "them against its real skin, write an HTML report and print the table.")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--quick", action="store_true", help="smoke run (~2 min; numbers meaningless)")
    p.add_argument("--test-head", default="headsq", help="bundled CT held out (default headsq)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    import dataclasses

    from .stages.demo import DemoSettings, run_demo

    settings = DemoSettings.quick() if args.quick else DemoSettings()
    settings = dataclasses.replace(settings, test_head=args.test_head, seed=args.seed)
    summary = run_demo(args.out, settings)
    print(summary["table"])
    print(f"report: {summary['report']}")
    return 0


def _add_samples(sub) -> None:
    p = sub.add_parser("samples", help="list the bundled real data and where it is")
    p.set_defaults(func=_run_samples)


def _run_samples(args) -> int:
    from . import samples

    for name in samples.names():
        print(f"{name:<10} {samples.path(name)}")
    print(f"provenance and licences: {samples.data_dir() / 'README.md'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skull2face",
        description="Facial approximation from a 3D skull: one subcommand per pipeline stage.")
    parser.add_argument("--version", action="version", version=f"skull2face {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_extract(sub)
    _add_landmarks(sub)
    _add_render(sub)
    _add_depth2mesh(sub)
    _add_dataset(sub)
    _add_train(sub)
    _add_export(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    _add_report(sub)
    _add_demo(sub)
    _add_samples(sub)
    return parser


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    if not verbose:  # third-party chatter is noise to a user
        for name in ("trimesh", "matplotlib", "PIL"):
            logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"skull2face {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("skull2face: interrupted", file=sys.stderr)
        return 130
