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
                   help="'raw' for volumes not in HU (uint8 exports, MR): Otsu thresholds unless given")
    p.add_argument("--skin-only", action="store_true", help="extract the skin only (MR heads)")
    p.add_argument("--opening", type=int, default=2, metavar="VOXELS",
                   help="opening that cuts the head free of table/holder (default 2)")
    p.add_argument("--smooth", type=int, default=0, metavar="N", help="Taubin smoothing iterations (default 0)")
    p.add_argument("--target-faces", type=int, default=None, metavar="N",
                   help="decimate each mesh to about N triangles")
    p.add_argument("--no-picture", action="store_true", help="skip extract.png")
    p.set_defaults(func=_run_extract)


def _run_extract(args) -> int:
    from .extract import extract
    from .geometry.surfaces import SurfaceSettings

    settings = SurfaceSettings(skin_threshold=args.skin_threshold, bone_threshold=args.bone_threshold,
                               intensity=args.intensity, opening_voxels=args.opening,
                               skin_only=args.skin_only, smooth_iterations=args.smooth,
                               target_faces=args.target_faces)
    rec = extract(args.volume, args.out, settings, picture=not args.no_picture)
    print(f"wrote {', '.join(rec['outputs'].values())} and extract.json to {args.out}")
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
