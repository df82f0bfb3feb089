"""Paths of the real data bundled with the package (see ``skull2face/data/README.md``).

Works the same in an editable and in a normal install: the files are package data.
Nothing is ever downloaded.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

# name -> path relative to the package's data folder
_SAMPLES = {
    # real head CTs with intact faces: the paired data
    "headsq": "ct/headsq.nii.gz",
    "cranium": "ct/cranium_ct0051.nii.gz",
    # a clinical DICOM series as the scanner wrote it: gantry tilt, uneven slice spacing (a folder)
    "ge_tilted": "ct/ge_hispeed_tilted_dicom_small",
    # real T1 MRI heads (skin only): real unpaired faces
    "mri_philips": "mri/philips_t1_mprage_1mm.nii.gz",
    "mri_siemens": "mri/siemens_xa30_t1_2mm.nii.gz",
    # real 3D face scans and the public Surrey face model
    "humface": "faces/humface_rvcg.obj",
    "humface_landmarks": "faces/humface_rvcg_landmarks.txt",
    "james": "faces/james_menpo3d.ply",
    "james_landmarks": "faces/james_menpo3d.ljson",
    "leeperrysmith": "faces/leeperrysmith_headscan.ply",
    "sfm": "faces/sfm_shape_3448.npz",
    "sfm_ibug": "faces/ibug_to_sfm.txt",
    # a real skull mesh in arbitrary pose, no mandible: a typical user input
    "arothron_skull": "skulls/human_skull_arothron.ply",
    # published soft-tissue thickness
    "tissue": "tissue/fstt_hona_stephan_2024.csv",
}


def names() -> list[str]:
    """Names of the bundled samples, for ``path``."""
    return sorted(_SAMPLES)


def data_dir() -> Path:
    """The folder holding the bundled data."""
    return Path(str(resources.files("skull2face") / "data"))


def path(name: str) -> Path:
    """Path of a bundled sample by name (e.g. ``"headsq"``) or by relative file name.

    A DICOM series (``"ge_tilted"``) is a folder.

    Raises
    ------
    KeyError
        If no such sample is bundled; the message lists the ones that are.
    """
    rel = _SAMPLES.get(name, name)
    p = data_dir() / rel
    if not (p.is_file() or p.is_dir()):
        raise KeyError(f"no bundled sample {name!r}; bundled: {', '.join(names())}")
    return p


def listing() -> str:
    """What ``skull2face samples`` prints: each bundled sample and its path, then the provenance file."""
    lines = [f"{name:<10} {path(name)}" for name in names()]
    return "\n".join(lines + [f"provenance and licences: {data_dir() / 'README.md'}"])
