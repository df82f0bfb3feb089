"""Population thickness tables, builds, sex and age group (issue 22, items 3-5): known answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from skull2face import samples
from skull2face.anatomy.names import BONE_TO_SKIN
from skull2face.anatomy.tissue import (BUILDS, MIN_BUILD_MM, TABLE_SOURCE, TissueTable, choose_table, load_table,
                                       thickness_for)
from skull2face.errors import InputError
from skull2face.geometry.normals import outward_normals_at
from skull2face.statistics.face_model import landmark_targets
from skull2face.statistics.thickness_prior import ThicknessPrior, for_population

SRC = str(Path(__file__).resolve().parents[1] / "src")
HEADER = "bone_landmark,soft_landmark,side,mean_mm,sd_mm,paper_table1_landmark"


def _bundled_lines() -> list[str]:
    return samples.path("tissue").read_text(encoding="utf-8").splitlines()


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def _shifted_table(tmp_path: Path, by_mm: float) -> Path:
    """The bundled table with every mean + ``by_mm``."""
    out = [_bundled_lines()[0]]
    for line in _bundled_lines()[1:]:
        cells = line.split(",", 5)
        cells[3] = repr(float(cells[3]) + by_mm)
        out.append(",".join(cells))
    return _write(tmp_path, f"plus_{by_mm:g}.csv", out)


# ------------------------------------------------------------------------------ choose_table

@pytest.mark.parametrize("build", list(BUILDS))
def test_build_is_mean_plus_z_sd_floored(build):
    tt = choose_table(build=build)
    z = BUILDS[build]
    assert tt.source == TABLE_SOURCE and tt.build == build and tt.path is None
    assert len(tt.rows) == len(load_table())
    for row, pop, raw in zip(tt.rows, tt.population, load_table()):
        assert pop == raw and row.sd_mm == raw.sd_mm
        assert row.mean_mm == (max(raw.mean_mm + z * raw.sd_mm, MIN_BUILD_MM) if z else raw.mean_mm)
    if build == "lean":  # mean - SD exactly, e.g. glabella 5.5 - 1.0
        assert thickness_for("G", tt.rows).mean_mm == 4.5


def test_build_floor(tmp_path):
    p = _write(tmp_path, "thin.csv", [HEADER, "g,g',midline,1.0,2.0,G"])
    assert choose_table(p, build="lean").rows[0].mean_mm == MIN_BUILD_MM
    assert choose_table(p, build="heavy").rows[0].mean_mm == 3.0


def test_record_round_trips_and_names_the_file(tmp_path):
    p = _shifted_table(tmp_path, 2.0)
    tt = choose_table(p, build="heavy")
    rec = tt.record()
    assert rec["path"] == str(p.resolve()) and len(rec["sha256"]) == 64 and rec["sha256"] in tt.source
    assert rec["build"] == "heavy" and rec["build_sd"] == 1.0 and "BMI" in rec["build_note"]
    back = TissueTable.from_record(rec)
    assert back.rows == tt.rows and back.population == tt.population and back.source == tt.source


BAD_TABLES = {
    "missing-column": ([HEADER.replace(",sd_mm", "")], "line 1", "sd_mm"),
    "not-a-number": ([HEADER, "g,g',midline,5.5,1.0,G", "n,se',midline,six,1.5,N"], "line 3", "mean_mm"),
    "negative": ([HEADER, "g,g',midline,-5.5,1.0,G"], "line 2", "positive"),
    "extra-field": ([HEADER, "g,g',midline,5.5,1.0,G", "", "n,se',midline,6,1.5,N,oops"], "line 4", "more fields"),
    "few-fields": ([HEADER, "g,g',midline,5.5"], "line 2", "fewer fields"),
    "bad-side": ([HEADER, "g,g',left,5.5,1.0,G"], "line 2", "side"),
    "unknown-landmark": ([HEADER, "g,g',midline,5.5,1.0,Xx"], "line 2", "Xx"),
    "twice": ([HEADER, "g,g',midline,5.5,1.0,G", "n,se',midline,6,1.5,G"], "line 3", "already assigned"),
    "bad-sex": ([HEADER + ",sex", "g,g',midline,5.5,1.0,G,woman"], "line 2", "sex"),
    "no-rows": ([HEADER], "line 2", "no rows"),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_malformed_table_names_file_and_line(tmp_path, case):
    lines, where, word = BAD_TABLES[case]
    p = _write(tmp_path, f"{case}.csv", lines)
    with pytest.raises(InputError) as exc:
        choose_table(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: ") and where in msg and word in msg and "\n" not in msg, msg


def test_not_utf8_names_the_line(tmp_path):
    p = tmp_path / "latin1.csv"
    p.write_bytes((HEADER + "\ng,g',midline,5.5,1.0,G\nn,s\xe9',midline,6,1.5,N\n").encode("latin-1"))
    with pytest.raises(InputError, match="line 3: thickness table is not UTF-8"):
        load_table(p)


SEXED = [HEADER + ",sex,age_group",
         "g,g',midline,4.0,1.0,G,female,", "g,g',midline,6.0,1.5,G,male,",
         "n,se',midline,6.5,1.5,N,pooled,", "pg,pg',midline,10.0,2.0,Pog,,18-29",
         "pg,pg',midline,12.0,2.5,Pog,,"]


def test_sex_column_is_honoured(tmp_path):
    p = _write(tmp_path, "sexed.csv", SEXED)
    female = choose_table(p, sex="female")
    assert thickness_for("G", female.rows).mean_mm == 4.0  # the female row
    assert thickness_for("N", female.rows).mean_mm == 6.5  # pooled rows serve both sexes
    assert thickness_for("Pog", female.rows).mean_mm == 12.0  # every age, no age group asked for
    assert thickness_for("G", choose_table(p, sex="male").rows).mean_mm == 6.0
    young = choose_table(p, sex="male", age_group="18-29", build="lean")
    assert thickness_for("Pog", young.rows).mean_mm == 8.0 and young.record()["age_group"] == "18-29"
    with pytest.raises(InputError, match=r"no pooled, every-age row for skull landmark G .*--sex"):
        choose_table(p)  # G has sexed rows only: say so, never average them
    with pytest.raises(InputError, match="no rows of age group '30-39'"):
        choose_table(p, sex="female", age_group="30-39")


def test_a_landmark_without_a_row_for_the_sex_is_refused(tmp_path):
    p = _write(tmp_path, "f_only.csv", [HEADER + ",sex", "g,g',midline,4.0,1.0,G,female",
                                        "g,g',midline,6.0,1.0,G,male", "n,se',midline,6.0,1.5,N,female"])
    with pytest.raises(InputError) as exc:
        choose_table(p, sex="male")
    assert str(exc.value).startswith(str(p)) and "skull landmark N" in str(exc.value)


def test_bundled_table_refuses_sex_and_age():
    with pytest.raises(InputError) as exc:
        choose_table(sex="female")
    msg = str(exc.value)
    assert "fstt_hona_stephan_2024.csv" in msg and "pooled adult values only (no sex column)" in msg
    assert "--thickness-table" in msg
    with pytest.raises(InputError, match="no age_group column"):
        choose_table(age_group="18-29")


# ----------------------------------------------------------------------------- L_A targets

def _sphere_skull_and_landmarks():
    """An 80 mm sphere (normals radial) with the paired skull landmarks on its front half."""
    skull = trimesh.creation.icosphere(subdivisions=5, radius=80.0)
    dirs = {"G": (0, 0.5, 1), "N": (0, 0.3, 1), "Ns": (0, -0.3, 1), "Pog": (0, -0.8, 1), "Gn": (0, -1, 0.8),
            "Zy_L": (0.9, 0, 0.5), "Zy_R": (-0.9, 0, 0.5), "Go_L": (0.7, -0.8, 0.2), "Go_R": (-0.7, -0.8, 0.2)}
    lms = {}
    for k, d in dirs.items():  # the nearest vertex, so the landmark lies on the surface
        d = np.asarray(d, float) / np.linalg.norm(d)
        lms[k] = skull.vertices[np.argmin(np.linalg.norm(skull.vertices / 80.0 - d, axis=1))]
    return skull, lms


def test_lean_targets_move_inward_by_the_rows_sd():
    skull, lms = _sphere_skull_and_landmarks()
    centre = np.zeros(3)
    avg = landmark_targets(skull.vertices, skull.faces, lms, centre)
    bundled = landmark_targets(skull.vertices, skull.faces, lms, centre, table=choose_table().rows)
    lean = landmark_targets(skull.vertices, skull.faces, lms, centre, table=choose_table(build="lean").rows)
    assert set(avg) == set(lean) == set(BONE_TO_SKIN.values())
    for bone, soft in BONE_TO_SKIN.items():
        np.testing.assert_array_equal(bundled[soft][0], avg[soft][0])
        sd = thickness_for(bone).sd_mm
        step = avg[soft][0] - lean[soft][0]
        assert np.linalg.norm(step) == pytest.approx(sd, abs=1e-9)
        # inward: along the outward bone normal (on a sphere, about radial), toward the centre
        normal = outward_normals_at(np.asarray(lms[bone])[None], skull.vertices, skull.faces, centre)[0]
        np.testing.assert_allclose(step / sd, normal, atol=1e-9)
        assert normal @ (lms[bone] / np.linalg.norm(lms[bone])) > 0.99
        assert lean[soft][1] == avg[soft][1] == sd


def test_a_landmark_without_a_row_gets_no_target(tmp_path):
    skull, lms = _sphere_skull_and_landmarks()
    p = _write(tmp_path, "g_only.csv", [HEADER, "g,g',midline,5.5,1.0,G"])
    targets = landmark_targets(skull.vertices, skull.faces, lms, np.zeros(3), table=choose_table(p).rows)
    assert list(targets) == ["g'"]


# -------------------------------------------------------------------------- the dense prior

def _prior() -> ThicknessPrior:
    rng = np.random.default_rng(3)
    mean = rng.uniform(3.0, 25.0, (40, 48)).astype(np.float32)
    sd = rng.uniform(1.0, 6.0, (40, 48)).astype(np.float32)
    return ThicknessPrior(mean, sd, np.zeros((40, 48), np.int16), 4.0, (0.0, -40.0), ("a", "b"), TABLE_SOURCE)


HEAD_LMS = {"G": (0, 15, 90), "N": (0, 0, 88), "Ns": (0, -45, 95), "Pog": (0, -95, 85), "Gn": (0, -110, 70),
            "Zy_L": (65, -20, 40), "Zy_R": (-65, -20, 40), "Go_L": (50, -80, 10), "Go_R": (-50, -80, 10)}


def test_bundled_average_leaves_the_prior_unchanged():
    prior = _prior()
    tt = choose_table()
    out = for_population(prior, tt.population, HEAD_LMS, build_sd=tt.build_sd)
    np.testing.assert_array_equal(out.mean_mm, prior.mean_mm)
    np.testing.assert_array_equal(out.sd_mm, prior.sd_mm)
    assert out.table == prior.table


def test_a_population_two_mm_thicker_raises_the_prior_two_mm_everywhere(tmp_path):
    prior = _prior()
    tt = choose_table(_shifted_table(tmp_path, 2.0))
    out = for_population(prior, tt.population, HEAD_LMS, source=tt.source)
    np.testing.assert_allclose(out.mean_mm - prior.mean_mm, 2.0, atol=1e-5)  # Shepard of a constant
    np.testing.assert_array_equal(out.sd_mm, prior.sd_mm)  # the SDs are the bundled ones: ratio 1
    assert out.mean_mm.shape == prior.mean_mm.shape and out.centre == prior.centre
    assert tt.source in out.table


def test_build_shifts_the_prior_by_its_own_sd(tmp_path):
    prior = _prior()
    heavy = for_population(prior, choose_table().population, HEAD_LMS, build_sd=1.0)
    np.testing.assert_allclose(heavy.mean_mm, prior.mean_mm + prior.sd_mm, rtol=1e-6)
    lean = for_population(prior, choose_table().population, HEAD_LMS, build_sd=-1.0)
    np.testing.assert_allclose(lean.mean_mm, np.maximum(prior.mean_mm - prior.sd_mm, 0.0), rtol=1e-6)
    # SDs twice the bundled ones: the prior's SD doubles everywhere
    lines = [_bundled_lines()[0]]
    for line in _bundled_lines()[1:]:
        cells = line.split(",", 5)
        cells[4] = repr(2 * float(cells[4]))
        lines.append(",".join(cells))
    wide = for_population(prior, choose_table(_write(tmp_path, "wide.csv", lines)).population, HEAD_LMS)
    np.testing.assert_allclose(wide.sd_mm, 2 * prior.sd_mm, rtol=1e-5)
    np.testing.assert_allclose(wide.mean_mm, prior.mean_mm, rtol=1e-6)


# ------------------------------------------------------------------ the command line, end to end

def _cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "skull2face", *argv], capture_output=True, text=True, env=env,
                          timeout=300)


def _one_line_exit_2(r: subprocess.CompletedProcess, *words: str) -> None:
    err = r.stderr
    assert r.returncode == 2, (r.returncode, err)
    assert "Traceback" not in err and err.count("\n") == 1, err
    for w in words:
        assert w in err, (w, err)


def test_cli_refuses_sex_with_the_pooled_table(tmp_path):
    r = _cli("predict", str(samples.path("arothron_skull")), "--sex", "female", "--out", str(tmp_path / "o"))
    _one_line_exit_2(r, "fstt_hona_stephan_2024.csv", "pooled adult values only (no sex column)",
                     "--sex female cannot be honoured", "--thickness-table")
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_malformed_table_naming_file_and_line(tmp_path):
    bad = _write(tmp_path, "mine.csv", [HEADER, "g,g',midline,5.5,1.0,G", "n,se',midline,6..0,1.5,N"])
    r = _cli("predict", str(samples.path("arothron_skull")), "--thickness-table", str(bad),
             "--out", str(tmp_path / "o"))
    _one_line_exit_2(r, str(bad), "line 3", "mean_mm")
    assert not (tmp_path / "o").exists()


def test_cli_predict_lean_records_the_table_and_build(tmp_path):
    """``predict --build lean`` on the bundled skull: the table and build in predict.json and the
    report, the L_A targets mean - SD, the face inside the average one."""
    import json

    from skull2face.report.collect import context_from_dirs
    from skull2face.report.html import render_html
    from skull2face.stages.predict import PredictSettings, predict

    skull = samples.path("arothron_skull")
    r = _cli("predict", str(skull), "--build", "lean", "--out", str(tmp_path / "lean"))
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "lean" / "predict.json").read_text(encoding="utf-8"))
    tissue = rec["tissue"]
    assert tissue["build"] == "lean" and tissue["build_sd"] == -1.0 and tissue["source"] == TABLE_SOURCE
    assert "no BMI strata" in tissue["build_note"] and tissue["used_by_method"] is True
    assert rec["settings"]["tissue"] == {"thickness_table": None, "build": "lean", "sex": None, "age_group": None}
    g = next(row for row in tissue["rows"] if row["bone"] == "g")
    assert g["mean_mm"] == 4.5 and g["population_mean_mm"] == 5.5  # 5.5 - 1.0 SD
    # the same skull at the average build: the lean face lies inside it where both are measured
    avg = predict(skull, tmp_path / "avg", PredictSettings(), picture=False)
    assert avg["tissue"]["build"] == "average"
    from skull2face.geometry.depthmap import load_depthmap

    a, b = load_depthmap(tmp_path / "avg" / "face_map"), load_depthmap(tmp_path / "lean" / "face_map")
    both = a.mask & b.mask
    assert np.median(a.height[both] - b.height[both]) > 0.5  # mm thinner, about an SD of the prior
    text = render_html(context_from_dirs([tmp_path / "lean"]))
    assert "Build: lean" in text and "no BMI strata" in text and "Hona &amp; Stephan 2024" in text
    assert "<td>4.5</td>" in text  # glabella's row as used: mean - SD
