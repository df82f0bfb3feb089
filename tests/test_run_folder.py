"""Run folders are claimed and filled all at once (issue 14, defect 7).

A finished ``--out`` folder holds exactly one run: a later run replaces an earlier one's files
(never mixes with them), a failed or killed run leaves the earlier run as it was, and a second
run into a folder that a live run holds is refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from skull2face.errors import InputError
from skull2face.io.run_folder import check_out, out_file, run_folder

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _run(out: Path, files: dict[str, str], stage: str = "predict") -> None:
    with run_folder(out, stage) as tmp:
        assert tmp != out and tmp.parent == out.parent and tmp.name.startswith(".")
        for name, text in files.items():
            (tmp / name).write_text(text)
        (tmp / f"{stage}.json").write_text("{}")


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_later_run_replaces_never_mixes(tmp_path):
    out = tmp_path / "o"
    _run(out, {"face.ply": "run 1", "face.obj": "run 1", "truth_skin.ply": "run 1"})
    _run(out, {"face.ply": "run 2"})
    assert _siblings(out) == ["face.ply", "predict.json"]
    assert (out / "face.ply").read_text(encoding="utf-8") == "run 2"
    assert _siblings(tmp_path) == ["o"]  # no lock, no temporary folder left beside it


def test_a_failed_run_leaves_the_earlier_run_whole(tmp_path):
    out = tmp_path / "o"
    _run(out, {"face.ply": "run 1"})
    with pytest.raises(RuntimeError):
        with run_folder(out, "predict") as tmp:
            (tmp / "face.ply").write_text("half of run 2")
            raise RuntimeError("killed half way")
    assert (out / "face.ply").read_text(encoding="utf-8") == "run 1" and (out / "predict.json").exists()
    assert _siblings(tmp_path) == ["o"]


def test_a_failed_first_run_leaves_no_folder(tmp_path):
    with pytest.raises(InputError):
        with run_folder(tmp_path / "o", "extract"):
            raise InputError("x.nii.gz", "bad")
    assert _siblings(tmp_path) == []


def test_a_killed_run_leaves_the_earlier_run_and_its_debris_is_cleared(tmp_path):
    out = tmp_path / "o"
    _run(out, {"face.ply": "run 1"})
    code = (f"import sys, time; sys.path.insert(0, {SRC!r})\n"
            "from skull2face.io.run_folder import run_folder\n"
            f"with run_folder({str(out)!r}, 'predict') as tmp:\n"
            "    (tmp / 'face.ply').write_text('run 2')\n"
            "    print('writing', flush=True)\n"
            "    time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "writing"
        # while it runs, the folder is claimed: a second run is refused, naming the folder
        with pytest.raises(InputError, match="another skull2face run is writing this folder"):
            _run(out, {"face.ply": "run 3"})
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert (out / "face.ply").read_text(encoding="utf-8") == "run 1" and _siblings(out) == ["face.ply", "predict.json"]
    assert any(n.startswith(".o.part-") for n in _siblings(tmp_path))  # SIGKILL skips all cleanup ...
    _run(out, {"face.ply": "run 4"})  # ... the next claim clears it (no live run holds the lock)
    assert _siblings(tmp_path) == ["o"] and (out / "face.ply").read_text(encoding="utf-8") == "run 4"


def test_a_folder_of_other_files_is_refused_not_deleted(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a skull2face predict run"):
        _run(out, {"face.ply": "x"})
    assert _siblings(out) == ["notes.txt"]
    out_empty = tmp_path / "empty"
    out_empty.mkdir()
    _run(out_empty, {"face.ply": "x"})  # an empty folder is fine
    assert _siblings(out_empty) == ["face.ply", "predict.json"]


def test_in_place_claim_keeps_the_folder_for_resuming(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_text("checkpoint")
    with run_folder(out, "train", replace=False) as where:
        assert where == out.resolve()
        (out / "metrics.jsonl").write_text("{}\n")
        with pytest.raises(InputError, match="another skull2face run"):
            with run_folder(out, "train", replace=False):
                pass
    assert _siblings(out) == ["last.pt", "metrics.jsonl"]
    assert _siblings(tmp_path) == ["run"]


def test_check_out_refusals(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(InputError, match="existing file"):
        check_out(f)
    with pytest.raises(InputError, match="lies under .*file.txt, which is a file"):
        check_out(f / "sub" / "out")
    with pytest.raises(InputError, match="existing folder"):
        check_out(tmp_path, kind="file")
    with pytest.raises(InputError, match="file.txt: is an input"):
        check_out(tmp_path, [f])  # the folder would be replaced, and the input with it
    with pytest.raises(InputError, match="is an input"):
        check_out(f, [f], kind="file")
    os.symlink(f, tmp_path / "link.txt")
    with pytest.raises(InputError, match="is an input"):
        check_out(tmp_path / "link.txt", [f], kind="file")
    check_out(tmp_path / "report", [tmp_path])  # an output inside an input folder adds, never overwrites
    with pytest.raises(InputError, match="cannot be written"):
        with out_file("/proc/skull2face-test/x.json"):
            pass


def test_stages_claim_their_folder(tmp_path):
    """Every stage that writes an --out folder (or file) goes through run_folder / out_file."""
    stages = Path(SRC) / "skull2face" / "stages"
    for name in ("predict", "extract", "render", "evaluate", "report", "dataset", "train", "demo", "landmarks",
                 "superimpose"):
        text = (stages / f"{name}.py").read_text(encoding="utf-8")
        assert "run_folder(" in text or "out_file(" in text, name
        assert "mkdir(" not in text, name


def test_two_processes_never_mix(tmp_path):
    """Three runs racing into one folder: it ends holding one run's files only."""
    out = tmp_path / "o"
    code = (f"import sys, time; sys.path.insert(0, {SRC!r})\n"
            "from skull2face.errors import InputError\n"
            "from skull2face.io.run_folder import run_folder\n"
            "tag = sys.argv[1]\n"
            "try:\n"
            f"    with run_folder({str(out)!r}, 'predict') as tmp:\n"
            "        for name in ('face.ply', 'face.obj', f'only_{tag}'):\n"
            "            (tmp / name).write_text(tag); time.sleep(0.05)\n"
            "        (tmp / 'predict.json').write_text(tag)\n"
            "except InputError as e:\n"
            "    print('refused', e)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, tag], stdout=subprocess.PIPE, text=True)
             for tag in ("a", "b", "c")]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    tags = {(out / n).read_text(encoding="utf-8") for n in ("face.ply", "face.obj", "predict.json")}
    assert len(tags) == 1
    tag = tags.pop()
    assert _siblings(out) == sorted(["face.ply", "face.obj", "predict.json", f"only_{tag}"])
    assert _siblings(tmp_path) == ["o"]
    assert sum("refused" in o for o in outs) <= 2  # a run is refused only while another holds the folder


def test_extract_twice_into_one_folder_keeps_only_the_second_run(tmp_path):
    """A real stage: the second run (skin only, no picture) leaves no skull.ply or extract.png of the first."""
    import json

    from skull2face.geometry.surfaces import SurfaceSettings
    from skull2face.io.volumes import write_volume
    from skull2face.phantoms import head_phantom
    from skull2face.stages.extract import ExtractSettings, extract

    ct = tmp_path / "ct.nii.gz"
    write_volume(head_phantom(shape=(48, 48, 40), spacing=(4.0, 4.0, 5.0)), ct)
    out = tmp_path / "o"
    extract(ct, out, ExtractSettings(picture=False))
    assert _siblings(out) == ["extract.json", "skin.ply", "skull.ply"]
    extract(ct, out, ExtractSettings(surfaces=SurfaceSettings(skin_only=True), picture=False))
    assert _siblings(out) == ["extract.json", "skin.ply"]
    assert json.loads((out / "extract.json").read_text(encoding="utf-8"))["outputs"] == {"skin": "skin.ply"}
    assert _siblings(tmp_path) == ["ct.nii.gz", "o"]


def test_sigterm_removes_the_partial_folder(tmp_path):
    """``kill`` (SIGTERM) of a run started by the CLI leaves neither a partial nor a temporary folder."""
    out = tmp_path / "o"
    code = (f"import sys, time; sys.path.insert(0, {SRC!r})\n"
            "from skull2face.cli import _interrupt_on_sigterm\n"
            "from skull2face.io.run_folder import run_folder\n"
            "_interrupt_on_sigterm()\n"
            "try:\n"
            f"    with run_folder({str(out)!r}, 'predict') as tmp:\n"
            "        (tmp / 'face.ply').write_text('half')\n"
            "        print('writing', flush=True)\n"
            "        time.sleep(60)\n"
            "except KeyboardInterrupt:\n"
            "    sys.exit(130)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "writing"
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=30) == 130
    assert _siblings(tmp_path) == []
