"""The command line as a user meets it."""

import json
import subprocess
import sys

import pytest

from skull2face import samples
from skull2face.cli import main


def test_help_lists_stages(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "extract" in capsys.readouterr().out


def test_python_m_works():
    r = subprocess.run([sys.executable, "-m", "skull2face", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and "skull2face" in r.stdout


def test_bad_input_is_one_line_no_traceback(tmp_path, capsys):
    rc = main(["extract", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "missing.nii.gz: not found" in err and "Traceback" not in err


def test_extract_headsq_end_to_end(tmp_path):
    out = tmp_path / "ex"
    r = subprocess.run([sys.executable, "-m", "skull2face", "extract", str(samples.path("headsq")),
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rec = json.loads((out / "extract.json").read_text())
    assert {p.name for p in out.iterdir()} == {"skin.ply", "skull.ply", "extract.json", "extract.png"}
    assert rec["thresholds"] == {"skin": -300.0, "bone": 300.0, "intensity": "hu"}
    assert rec["skin"]["mesh"]["watertight"] is True
    assert rec["volume"]["shape_ijk"] == [64, 64, 93]
    assert len(rec["input"]["sha256"]) == 64
    assert "total_s" in rec["timings"]
