"""The ``skull2face`` command: a table of commands generated from the stages' settings.

Each row of `COMMANDS` names a stage function, its settings dataclass and its inputs (paths).
A command's options come from the settings dataclass's field metadata (`skull2face.options`),
so a default and its help are written once, beside the code that uses them. ``skull2face
--help`` imports no stage (it must answer at once); a command imports its stage when it runs.

Bad input, and any impossible setting, ends with one line naming the file or the setting and
the problem (exit status 2), never a traceback. An option that takes one value accepts a value
that starts with ``-`` (``--front -y``, like ``--front=-y``), unless the value is one of the
command's own options (`dash_values`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .errors import InputError

log = logging.getLogger("skull2face")


@dataclass(frozen=True)
class Arg:
    """An input or output of a command (a path, not a setting).

    ``name`` is positional (``"volume"``) or an option (``"--out"``); ``dest`` is the stage
    function's keyword for it. Other fields as in ``argparse.add_argument``.
    """

    name: str
    dest: str
    help: str
    nargs: str | None = None
    required: bool = False
    default: Any = None
    metavar: str | None = None
    switch: bool = False  # an on/off flag (store_true)

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        if self.switch:
            parser.add_argument(self.name, dest=self.dest, action="store_true", help=self.help)
            return
        kw: dict[str, Any] = {"help": self.help}
        if self.nargs:
            kw["nargs"] = self.nargs
        if self.name.startswith("-"):
            kw.update(dest=self.dest, required=self.required, default=self.default)
            if self.metavar:
                kw["metavar"] = self.metavar
            parser.add_argument(self.name, **kw)
        else:  # positional: argparse takes its dest as the first argument
            parser.add_argument(self.dest, metavar=self.metavar or self.name, **kw)


@dataclass(frozen=True)
class Command:
    """One row of the command table.

    Attributes
    ----------
    name : str
        As typed (``"dataset build"`` for a two-word command).
    help : str
        One line for ``skull2face --help``.
    run : str
        ``"module:function"`` of the stage function, called as
        ``function(**inputs, settings=settings)``.
    settings : str or None
        ``"module:Class"`` of its settings dataclass (its documented fields are the options).
    inputs : tuple of Arg
    echo : str or None
        ``"module:function"`` turning the stage's return value into the lines printed; None
        prints a returned string as it is.
    description : str
        Shown by ``skull2face NAME --help``.
    """

    name: str
    help: str
    run: str
    settings: str | None = None
    inputs: tuple[Arg, ...] = field(default_factory=tuple)
    echo: str | None = None
    description: str = ""


_S = "skull2face.stages."
_POSE = "the first defines the frame"

COMMANDS: tuple[Command, ...] = (
    Command("extract", "head CT/MR volume -> skull and skin meshes (mm, LPS)",
            _S + "extract:extract", _S + "extract:ExtractSettings",
            (Arg("volume", "volume_path", "DICOM series folder, or a .nii/.nii.gz/.nrrd/.mha/.mhd file"),
             Arg("--out", "out_dir", "output folder", required=True)),
            _S + "extract:echo",
            "Extract the outer skin and the skull (cranium + mandible) of a head volume as meshes in the "
            "volume's own LPS millimetre coordinates."),
    Command("landmarks", "detect (or check given) landmarks on a skull or face mesh",
            _S + "landmarks:find_landmarks", _S + "landmarks:LandmarkSettings",
            (Arg("mesh", "mesh_path", "skull or face mesh (PLY/OBJ/STL/OFF/GLB, mm)"),
             Arg("--landmarks", "given_path", "given landmarks: JSON, Slicer .mrk.json/.fcsv, MeshLab .pp or CSV",
                 metavar="FILE"),
             Arg("--out", "out_path", "write the landmarks (canonical JSON)", metavar="FILE.json")),
            _S + "landmarks:echo",
            "Locate the paper's Table 1 (skull) or Table 2 (face) landmarks on a mesh. Given landmarks always "
            "win; the rest are detected; landmarks that cannot exist on the input (e.g. a chin on a CT cut at "
            "the lip) are reported missing."),
    Command("render", "skull and/or face meshes -> depth maps in one head frame",
            _S + "render:render_meshes", _S + "render:RenderSettings",
            (Arg("meshes", "mesh_paths", "one skull and/or one face mesh; " + _POSE, nargs="+"),
             Arg("--out", "out_dir", "output folder", required=True),
             Arg("--landmarks", "landmark_paths", "given landmark files, one per mesh in the same order ('-' for "
                 "none)", nargs="+", metavar="FILE")),
            _S + "render:echo",
            "Render orthographic depth maps (float32 mm + mask + render spec + preview) of one or two meshes in "
            "the head frame placed from the FIRST mesh's landmarks, e.g. skull.ply skin.ply from extract."),
    Command("depth2mesh", "a depth map back to a mesh in the input's own coordinates",
            _S + "render:depth2mesh", _S + "render:Depth2MeshSettings",
            (Arg("map", "map_path", "depth map (.npz with its .json spec beside it)"),
             Arg("--out", "out_path", "output mesh (.ply/.obj/.stl/.off/.glb)", required=True, metavar="MESH")),
            _S + "render:echo_mesh"),
    Command("dataset build", "real head CTs + real faces -> training dataset folder",
            _S + "dataset:build", "skull2face.dataset.build:DatasetSettings",
            (Arg("cts", "cts", "head CTs: volume files, DICOM series folders (one series each), folders of "
                 "volume files, @LIST files or quoted globs ('cts/*.nii.gz')", nargs="*", metavar="CT"),
             Arg("--out", "out_dir", "new output folder", required=True),
             Arg("--ct", "ct_paths", "more head CTs, as the positional ones (default, when none is given: both "
                 "bundled real CTs)", nargs="+", metavar="CT"),
             Arg("--ct-list", "ct_list", "text file(s) naming one CT per line (# comments; relative to the file)",
                 nargs="+", metavar="FILE")),
            _S + "dataset:echo",
            "Build a C2F-style dataset: one real pair per CT, synthetic pairs grown from each real head (shape "
            "warps + published tissue thickness), unpaired skulls, unpaired faces (bundled real MRI skins and "
            "face scans, then Surrey Face Model samples), split by source head, with a statistics report. Each "
            "CT first passes a quality gate (field of view, coarse pitch, dental metal, mouthpiece, mask shell): "
            "a head is used, partial (its bad regions get weight 0 in maps/<id>_weight.npz) or rejected "
            "(skipped with a log line); report/heads.md lists every head's status."),
    Command("train", "train the skull2face cGAN on a dataset folder (staged resolution)",
            _S + "train:train", _S + "train:TrainSettings",
            (Arg("--data", "data_dir", "dataset folder (skull2face dataset build)", required=True),
             Arg("--out", "out_dir", "run folder", required=True),
             Arg("--resume", "resume", "continue a killed run from its last.pt", switch=True)),
            _S + "train:echo",
            "Staged cGAN training (8x8 doubling to the final resolution): paired samples with cGAN + L1, "
            "unpaired skulls with the anthropological loss, unpaired faces for a face discriminator. Writes "
            "metrics.jsonl, loss.png, train.json, last.pt, best.pt. Distributed: "
            "torchrun --nproc_per_node=N -m skull2face train ..."),
    Command("calibrate", "one leave-one-head-out fold: how far a run's correction is right on its held-out heads",
            _S + "export:calibrate_run", None,
            (Arg("run", "run_dir", "training run folder"),
             Arg("--data", "data_dir", "the dataset the run trained on (its real test heads are scored)",
                 required=True)),
            _S + "export:echo_calibration",
            "Run the generator on each real held-out head of the dataset and measure, per face region, how far its "
            "correction moves the face-model fit towards the true skin. Writes RUN/calibration.json, which "
            "`skull2face export --folds` turns into the model file's trusted share of the correction."),
    Command("export", "a training run -> one model file (generator, references, trusted correction per region)",
            _S + "export:make_bundle", _S + "export:ExportSettings",
            (Arg("run", "run_dir", "training run folder"),
             Arg("--data", "data_dir", "the dataset the run trained on", required=True),
             Arg("--out", "path", "model file to write", required=True, metavar="MODEL.pt")),
            _S + "export:echo_bundle",
            "Write the run's best generator with the mean training face and reference training pairs (for "
            "--method mean-face / nearest-skull), the dataset's thickness prior, and the correction's trusted share "
            "per face region chosen on the --folds files (none given: the correction is not applied) into one "
            "file that `predict --model` reads."),
    Command("predict", "skull mesh or head CT -> face mesh (PLY/STL/OBJ, input coordinates)",
            _S + "predict:predict", _S + "predict:PredictSettings",
            (Arg("input", "input_path", "skull mesh (PLY/OBJ/STL/OFF/GLB) or head CT (DICOM folder, NIfTI, NRRD, "
                 "MHA)"),
             Arg("--out", "out_dir", "output folder", required=True),
             Arg("--landmarks", "landmarks_path", "given skull landmarks (they win)", metavar="FILE")),
            _S + "predict:echo",
            "Predict the face of a skull. INPUT is a skull mesh (landmarks given or detected) or a head CT "
            "(extracted first; its skin is kept as truth_skin.ply). Writes face.ply/.stl/.obj in the input's own "
            "millimetre coordinates, the face and skull depth maps with their spec, predict.png and predict.json."),
    Command("measure", "standard cranial and facial measurements of a skull (mm)",
            _S + "measure:measure", _S + "measure:MeasureSettings",
            (Arg("input", "input_path", "skull mesh (PLY/OBJ/STL/OFF/GLB) or head CT / T1 MRI volume"),
             Arg("--out", "out_dir", "output folder", required=True),
             Arg("--landmarks", "landmarks_path", "given skull landmarks (they win)", metavar="FILE")),
            _S + "measure:echo",
            "The osteometric measurements the skull's landmarks and vault allow (Buikstra & Ubelaker 1994, after "
            "Martin and Howells): maximum cranial length and breadth, bizygomatic breadth, upper facial height "
            "and breadth, nasal height, interorbital breadth, total facial height, bigonial breadth; each with the "
            "points used or why it is missing. Writes measurements.csv, measurements.json, skull_landmarks.json "
            "and measure.json."),
    Command("evaluate", "surface-to-surface error of a predicted face against the true skin",
            _S + "evaluate:evaluate", None,
            (Arg("--pred", "pred_path", "predicted face mesh", required=True),
             Arg("--truth", "truth_path", "true skin mesh (e.g. from extract)", required=True),
             Arg("--landmarks", "landmarks_path", "face landmarks of the truth (else detected)", metavar="FILE"),
             Arg("--out", "out_dir", "output folder", required=True)),
            _S + "evaluate:echo",
            "Errors (mm) in both directions over a face region fixed by the truth's landmarks: RMSE, mean, "
            "median, p95, max, share within 1/2/2.5 mm, per region; writes evaluate.json, error_on_truth.ply and "
            "heatmap.png."),
    Command("superimpose", "test a skull against a face photograph (craniofacial superimposition)",
            _S + "superimpose:superimpose", _S + "superimpose:SuperimposeSettings",
            (Arg("skull", "skull_path", "skull mesh (PLY/OBJ/STL/OFF/GLB, mm) or head CT"),
             Arg("photo", "photo_path", "face photograph (JPEG, PNG)"),
             Arg("--out", "out_dir", "output folder", required=True),
             Arg("--photo-landmarks", "photo_landmarks_path", "the photo's landmarks in pixels: CSV name,x,y or "
                 "JSON (required: there is no automatic detector)", metavar="FILE"),
             Arg("--landmarks", "landmarks_path", "given skull landmarks (they win)", metavar="FILE")),
            _S + "superimpose:echo",
            "Solve the camera that projects the skull's soft-tissue points (each skull landmark moved out along "
            "its bone normal by its published tissue thickness) onto the photo's landmarks, and grade the fit "
            "(strong / moderate / limited support, or inconsistent; mm at the face). Writes overlay.png, "
            "side_by_side.png, landmarks.csv and superimpose.json. Supports or excludes; never identifies."),
    Command("report", "one self-contained HTML page from predict/evaluate folders or a demo run",
            _S + "report:report", _S + "report:ReportSettings",
            (Arg("dirs", "dirs", "demo run folder, predict or evaluate folders", nargs="+", metavar="RUN_OR_DIR"),
             Arg("--out", "out_dir", "output folder", required=True)),
            _S + "report:echo",
            "Gather predictions and evaluations (a demo run folder, or any predict/ and evaluate/ folders) into "
            "report.html: pictures, error heat maps, the metrics table of every method, settings and input "
            "hashes. Opens offline."),
    Command("demo", "the whole job on the bundled real data (leave one head out) with a report",
            _S + "demo:run_demo", _S + "demo:DemoSettings",
            (Arg("--out", "out_dir", "output folder (default runs/demo)", default="runs/demo"),
             Arg("--quick", "quick", "smoke run (~2 min; numbers meaningless)", switch=True)),
            _S + "demo:echo",
            "Build a dataset from the bundled CTs holding one real head out, train briefly on the CPU, predict "
            "the held-out face with skull2face and every baseline, evaluate them against its real skin, write an "
            "HTML report and print the table."),
    Command("samples", "list the bundled real data and where it is",
            "skull2face.samples:listing", None, ()),
)


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _top_help() -> str:
    width = max(len(c.name) for c in COMMANDS) + 2
    rows = "\n".join(f"  {c.name:<{width}}{c.help}" for c in COMMANDS)
    return (f"usage: skull2face [-h] [--version] [-v | -q] COMMAND ...\n\n"
            f"Facial approximation from a 3D skull: one command per pipeline stage.\n\n"
            f"commands:\n{rows}\n\n"
            f"options:\n  -h, --help     show this help (skull2face COMMAND --help: the command's options)\n"
            f"  --version      show the version\n  -v, --verbose  log debug detail\n"
            f"  -q, --quiet    log warnings and errors only\n")


def command_parser(cmd: Command) -> argparse.ArgumentParser:
    """The ``argparse`` parser of one command: its inputs, then its settings' options."""
    from .options import add_options

    p = argparse.ArgumentParser(prog=f"skull2face {cmd.name}", description=cmd.description or cmd.help)
    for arg in cmd.inputs:
        arg.add_to(p)
    if cmd.settings:
        add_options(p, _load(cmd.settings))
    return p


def dash_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Join an option that takes one value with a following word that starts with ``-``.

    ``argparse`` reads ``--front -y`` as two options and fails ("expected one argument"), so
    the help's own example could not be typed. Here ``--front -y`` becomes ``--front=-y``
    when ``-y`` is not an option of the command (nor ``-`` alone, nor after ``--``).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser (its options decide which words are options).
    argv : list of str
        The command's words.

    Returns
    -------
    list of str
        ``argv`` with such pairs joined.
    """
    one_value = {s for a in parser._actions if a.option_strings and a.nargs is None
                 for s in a.option_strings}
    known = {s for a in parser._actions for s in a.option_strings}
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return out + argv[i:]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if (word in one_value and nxt is not None and nxt.startswith("-") and nxt != "-"
                and not nxt.startswith("--") and nxt.split("=")[0] not in known):
            out.append(f"{word}={nxt}")
            i += 2
            continue
        out.append(word)
        i += 1
    return out


def _find(words: list[str]) -> tuple[Command | None, int]:
    for cmd in COMMANDS:
        parts = cmd.name.split()
        if words[:len(parts)] == parts:
            return cmd, len(parts)
    return None, 0


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    if not verbose:  # third-party chatter is noise to a user
        for name in ("trimesh", "matplotlib", "PIL"):
            logging.getLogger(name).setLevel(logging.WARNING)
    # Python warnings (torch's, numpy's) into the log, shown with -v only: a refusal is one line.
    # ITK, GDCM and MetaIO output goes there too (skull2face.io.native, DEBUG), and OpenCV's own
    # log is held to errors (read when OpenCV is first imported, which is later than this).
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.DEBUG if verbose else logging.ERROR)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "DEBUG" if verbose else "ERROR")


def _interrupt_on_sigterm() -> None:
    """Let ``kill`` (SIGTERM) end a run as Ctrl-C does, so its partial output folder is removed
    (`skull2face.io.run_folder`); only SIGKILL skips that, and the next run clears it."""
    import signal
    import threading

    def stop(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def main(argv: list[str] | None = None) -> int:
    """Run ``skull2face ARGV``; returns the exit status (0 done, 2 bad input or settings).

    As with ``argparse``, ``--help``, ``--version`` and usage errors end in ``SystemExit``
    (status 0, 0 and 2).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = quiet = False
    while argv and argv[0].startswith("-"):
        flag = argv.pop(0)
        if flag in ("-h", "--help"):
            print(_top_help(), end="")
            raise SystemExit(0)
        if flag == "--version":
            print(f"skull2face {__version__}")
            raise SystemExit(0)
        if flag in ("-v", "--verbose", "-q", "--quiet"):
            verbose, quiet = verbose or flag in ("-v", "--verbose"), quiet or flag in ("-q", "--quiet")
            continue
        print(f"{_top_help()}\nskull2face: error: unknown option {flag}", file=sys.stderr)
        raise SystemExit(2)
    if not argv:
        print(f"{_top_help()}\nskull2face: error: a command is required", file=sys.stderr)
        raise SystemExit(2)
    cmd, used = _find(argv)
    if cmd is None:
        groups = sorted({c.name.split()[0] for c in COMMANDS if " " in c.name})
        if argv[0] in groups:
            acts = [c.name.split()[1] for c in COMMANDS if c.name.split()[0] == argv[0]]
            print(f"skull2face {argv[0]}: error: choose an action: {', '.join(acts)}", file=sys.stderr)
        else:
            print(f"skull2face: error: unknown command {argv[0]!r} (skull2face --help lists them)", file=sys.stderr)
        raise SystemExit(2)
    parser = command_parser(cmd)
    args = parser.parse_args(dash_values(parser, argv[used:]))
    _setup_logging(verbose, quiet)
    settings = None
    if cmd.settings:
        from .options import settings_from_args

        try:
            settings = settings_from_args(_load(cmd.settings), args)
        except ValueError as exc:  # an impossible setting, refused by the dataclass
            print(f"skull2face {cmd.name}: error: {exc}", file=sys.stderr)
            return 2
    kwargs = {a.dest: getattr(args, a.dest) for a in cmd.inputs}
    _interrupt_on_sigterm()
    if settings is not None:
        kwargs["settings"] = settings
    try:
        result = _load(cmd.run)(**kwargs)
    except InputError as exc:  # names the file and the problem
        print(f"skull2face {cmd.name}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be read or written (permissions, a full disk): one line too
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"skull2face {cmd.name}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("skull2face: interrupted", file=sys.stderr)
        return 130
    text = _load(cmd.echo)(result) if cmd.echo else result if isinstance(result, str) else ""
    try:
        if text:
            print(text)
    except BrokenPipeError:  # `skull2face samples | head`
        pass
    return 0
