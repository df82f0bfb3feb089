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


def test_bad_extra_ct_and_head_weight_are_one_line(tmp_path, capsys):
    """demo --extra-ct naming no file, and a malformed --head-weight: one line, exit status 2."""
    rc = main(["demo", "--out", str(tmp_path / "d"), "--extra-ct", str(tmp_path / "nope.nii.gz")])
    err = capsys.readouterr().err
    assert rc == 2 and "nope.nii.gz: --extra-ct: not found" in err and "Traceback" not in err
    rc = main(["dataset", "build", "--out", str(tmp_path / "ds"), "--head-weight", "pt_*=2"])
    err = capsys.readouterr().err
    assert rc == 2 and "--head-weight 'pt_*=2': expected PATTERN=W" in err and "Traceback" not in err


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
    rec = json.loads((out / "extract.json").read_text(encoding="utf-8"))
    assert {p.name for p in out.iterdir()} == {"skin.ply", "skull.ply", "extract.json", "extract.png"}
    assert rec["thresholds"] == {"skin": -300.0, "bone": 300.0, "intensity": "hu", "modality": "ct"}
    assert rec["skin"]["mesh"]["watertight"] is True
    assert rec["volume"]["shape_ijk"] == [64, 64, 93]
    assert len(rec["input"]["sha256"]) == 64
    assert "total_s" in rec["timings"]


def test_top_help_imports_no_stage():
    code = ("import sys\nfrom skull2face.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(','.join(sorted(m for m in sys.modules if m.startswith(('skull2face', 'torch', 'trimesh', 'numpy')))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1].split(",") == ["skull2face", "skull2face.cli", "skull2face.errors"]


def test_every_command_is_generated_from_its_settings():
    """Each command parses with its inputs only, and its options' defaults are the dataclass's own."""
    import dataclasses
    import inspect

    from skull2face.cli import COMMANDS, _load, command_parser
    from skull2face.options import settings_from_args

    for cmd in COMMANDS:
        argv = []
        for a in cmd.inputs:
            if a.switch:
                continue
            if not a.name.startswith("-"):
                argv += ["x"] * (2 if a.nargs == "+" else 1)
            elif a.required:
                argv += [a.name, "x"]
        args = command_parser(cmd).parse_args(argv)
        func = _load(cmd.run)
        params = inspect.signature(func).parameters
        for a in cmd.inputs:
            assert a.dest in params, f"{cmd.name}: {func.__name__} has no parameter {a.dest}"
        if cmd.settings:
            cls = _load(cmd.settings)
            assert "settings" in params, cmd.name
            assert dataclasses.asdict(settings_from_args(cls, args)) == dataclasses.asdict(cls()), cmd.name
        if cmd.echo:
            assert callable(_load(cmd.echo))


def test_impossible_setting_is_one_line_exit_2(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--final-res", "100"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "final_res" in err and "Traceback" not in err


def test_options_keep_their_names(tmp_path):
    """Options users know (and scripts use) keep their spelling."""
    from skull2face.cli import COMMANDS, command_parser

    by_name = {c.name: command_parser(c).format_help() for c in COMMANDS}
    for name, flags in {"extract": ["--opening", "--smooth", "--target-faces", "--skin-only", "--no-picture",
                                    "--intensity"],
                        "render": ["--size", "--mm-per-px", "--surface", "--landmarks", "--front", "--up"],
                        "dataset build": ["--ct", "--test-head", "--n-paired", "--no-real-faces", "--workers"],
                        "train": ["--final-res", "--no-staged", "--betas", "--resume", "--schedule"],
                        "depth2mesh": ["--max-jump"], "demo": ["--quick", "--test-head", "--seed"],
                        "report": ["--title", "--screenshot"], "landmarks": ["--surface", "--pose", "--out"]}.items():
        for flag in flags:
            assert flag in by_name[name], (name, flag)


def test_unknown_command_and_missing_action(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2 and "unknown command" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["dataset"])
    assert e.value.code == 2 and "build" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["dataset", "build", "--n-paired", "-2"], "--n-paired must be >= 0, got -2"),
    (["extract", "x.nii.gz", "--opening", "-1"], "--opening must be >= 0, got -1"),
    (["extract", "x.nii.gz", "--smooth", "-3"], "--smooth must be >= 0, got -3"),
    (["extract", "x.nii.gz", "--target-faces", "0"], "--target-faces must be >= 4, got 0"),
    (["render", "skull.ply", "--size", "0"], "--size must be >= 8, got 0"),
    (["depth2mesh", "m.npz", "--max-jump", "-1"], "--max-jump must be > 0, got -1.0"),
    (["demo", "--workers", "0"], "--workers must be >= 1, got 0"),
])
def test_impossible_counts_are_refused_before_any_work(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    rc = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1
    assert not out.exists()
