"""Stage ``dataset build``: real head CTs and real faces -> a training dataset folder.

The work is `skull2face.dataset.build.build_dataset`; this stage supplies the bundled real
CTs when none are given and adds the picture of samples (``report/samples.png``) (format of the folder: ``docs/dataset-format.md``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import samples
from ..dataset.build import DatasetSettings, build_dataset
from ..errors import InputError
from ..io.run_folder import run_folder


def build(out_dir: str | os.PathLike, ct_paths: list[str | os.PathLike] | None = None,
          settings: DatasetSettings | None = None, cts: list[str | os.PathLike] | None = None,
          ct_list: list[str | os.PathLike] | None = None) -> dict:
    """Build a dataset folder from head CTs.

    Parameters
    ----------
    out_dir : path-like
        A new folder (refused if it already holds a dataset).
    ct_paths, cts : list of path-like, optional
        Head CTs: volume files, DICOM series folders, folders of volume files, ``@list`` files
        and patterns (`skull2face.io.volume_inputs.expand_volume_inputs`); none at all (and no
        ``ct_list``): both bundled real CTs (headsq, cranium_ct0051).
    settings : DatasetSettings, optional
    ct_list : list of path-like, optional
        List files, one CT a line.

    Returns
    -------
    dict
        The manifest written to ``manifest.json``.
    """
    from ..io.atomic import write_json
    from ..report.dataset import write_sample_grid

    from ..io.volume_inputs import expand_volume_inputs

    given = list(cts or []) + list(ct_paths or [])
    cts = (expand_volume_inputs(given, ct_list) if given or ct_list
           else [samples.path("headsq"), samples.path("cranium")])
    check_inputs(out_dir, cts)
    with run_folder(out_dir, "dataset", cts, markers=("manifest.json",)) as out:
        manifest = build_dataset(cts, out, settings or DatasetSettings())
        record_path = out / "dataset.json"
        record = json.loads(record_path.read_text(encoding="utf-8"))
        record["report"]["samples_png"] = write_sample_grid(out, manifest)
        write_json(record_path, record)
    return manifest


def check_inputs(out_dir: str | os.PathLike, cts: list[str | os.PathLike]) -> None:
    """Refuse, before any slow work, a folder that holds a dataset and CTs that cannot be read."""
    from ..io.volumes import is_volume_path

    if (Path(out_dir) / "manifest.json").exists():
        raise InputError(out_dir, "already holds a dataset (manifest.json); choose a new --out folder")
    for ct in cts:
        if not Path(ct).exists():
            raise InputError(ct, "not found")
        if not is_volume_path(ct):
            raise InputError(ct, "not a head CT volume (a DICOM series folder, or a .nii/.nii.gz/.nrrd/.mha/.mhd "
                                 "file)")


def echo(manifest: dict) -> str:
    """What ``skull2face dataset build`` prints: samples per kind and split."""
    counts: dict[str, int] = {}
    for s in manifest["samples"]:
        key = f"{s['kind']} ({s['split']})"
        counts[key] = counts.get(key, 0) + 1
    from ..dataset.report import head_table

    lines = [f"{v:6d}  {k}" for k, v in sorted(counts.items())]
    return "\n".join([head_table(manifest.get("heads", {})), ""] + lines
                     + [f"wrote {len(manifest['samples'])} samples, manifest.json, dataset.json and report/ "
                        "(report/heads.md: the quality gate per head)"])
