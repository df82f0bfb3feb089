"""Landmark names, aliases and the soft-tissue thickness table, against known answers."""

import pytest

from skull2face.anatomy import names, tissue
from skull2face.errors import InputError


def test_tables_match_the_paper():
    assert names.surface_names("skull") == [
        "Da_L", "Da_R", "Fmt_L", "Fmt_R", "G", "Gn", "Go_L", "Go_R", "N", "Ns", "Pog", "Pr",
        "Zy_L", "Zy_R"]
    assert names.surface_names("face") == [
        "al_L", "al_R", "en_L", "en_R", "g'", "gn'", "go'_L", "go'_R", "me", "n", "pog'", "sn",
        "t_L", "t_R", "zy'_L", "zy'_R"]
    assert len(names.ALL) == len(names.SKULL) + len(names.FACE)
    zy = names.SKULL["Zy_L"]
    assert (zy.full_name, zy.surface, zy.bilateral, zy.side, zy.base) == ("Zygion", "skull", True, "L", "Zy")
    assert names.FACE["n"].side is None and not names.FACE["n"].bilateral
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        zy.name = "x"  # frozen


def test_bone_to_skin_pairs_are_real_landmarks():
    assert names.BONE_TO_SKIN["N"] == "n" and names.BONE_TO_SKIN["Ns"] == "sn"
    assert names.BONE_TO_SKIN["Go_R"] == "go'_R"
    assert set(names.BONE_TO_SKIN) <= set(names.SKULL)
    assert set(names.BONE_TO_SKIN.values()) <= set(names.FACE)
    assert set(names.TISSUE_ROW) == set(names.SKULL)


@pytest.mark.parametrize("raw, surface, expected", [
    ("N", None, "N"), ("n", None, "n"), ("Zy_L", None, "Zy_L"), ("g'", None, "g'"),
    ("nasion", "skull", "N"), ("nasion", "face", "n"), ("Nasion", "skull", "N"),
    ("glabella", "skull", "G"), ("glabella", "face", "g'"),
    ("Zygion left", "skull", "Zy_L"), ("zygion_l", "skull", "Zy_L"), ("Zy_left", "skull", "Zy_L"),
    ("Zy L", "skull", "Zy_L"), ("left zygion", "skull", "Zy_L"), ("Right Zygion", "face", "zy'_R"),
    ("zy_L", "skull", "Zy_L"), ("n", "skull", "N"), ("N", "face", "n"), ("pog", "face", "pog'"),
    ("g_prime", None, "g'"), ("g_soft", "face", "g'"), ("g\u2019", None, "g'"),
    ("go\u2019_L", None, "go'_L"), ("gonion prime right", None, "go'_R"),
    ("soft tissue nasion", None, "n"), ("Subnasale", None, "sn"), ("Nasospinale", None, "Ns"),
    ("Frontomalare temporale L", "skull", "Fmt_L"), ("Me", None, "me"), ("EN_R", None, "en_R"),
    ("Zy L", None, "Zy_L"), ("dacryon-right", "skull", "Da_R"),
])
def test_resolve_name(raw, surface, expected):
    assert names.resolve_name(raw, surface) == expected


@pytest.mark.parametrize("raw, surface, words", [
    ("nasion", None, ["ambiguous", "N or n"]),     # bone or skin?
    ("Zygion left", None, ["ambiguous"]),
    ("Zygion", "skull", ["side", "Zy_L"]),          # paired landmark needs a side
    ("G_L", "skull", ["midline"]),
    ("g'", "skull", ["not a known landmark on the skull"]),
    ("sn", "skull", ["not a known"]),
    ("foo", "face", ["'foo'", "valid names", "pog'"]),
    ("Zy L R", "skull", ["both sides"]),
    ("", None, ["empty"]),
])
def test_resolve_name_refuses(raw, surface, words):
    with pytest.raises(KeyError) as info:
        names.resolve_name(raw, surface)
    message = str(info.value)
    for word in words:
        assert word in message


def test_tissue_table_known_values():
    rows = tissue.load_table()
    assert len(rows) == 25
    assert tissue.thickness_for("G").mean_mm == 5.5
    assert tissue.thickness_for("Zy_L").mean_mm == 7.5
    da = tissue.thickness_for("Da_R")
    assert (da.bone, da.soft, da.mean_mm, da.sd_mm) == ("mso", "mso'", 7.0, 2.0)
    assert da.is_stand_in and da.paper_landmarks == ("Fmt", "Da")
    assert tissue.thickness_for("Fmt_L") == da
    assert tissue.thickness_for("Ns").bone == "ss" and tissue.thickness_for("Ns").is_stand_in
    assert tissue.thickness_for("N").bone == "n" and not tissue.thickness_for("N").is_stand_in
    assert tissue.thickness_for("glabella").bone == "g"
    # every skull landmark has a row, and it is the one names.TISSUE_ROW documents
    for name in names.SKULL:
        assert tissue.thickness_for(name).bone == names.TISSUE_ROW[name]


def test_tissue_unknown_landmark():
    with pytest.raises(KeyError):
        tissue.thickness_for("n'")


HEADER = "bone_landmark,soft_landmark,side,mean_mm,sd_mm,paper_table1_landmark\n"


@pytest.mark.parametrize("body, words", [
    ("g,g',midline,abc,1.0,G\n", ["line 2", "mean_mm", "abc"]),
    ("g,g',midline,-1,1.0,G\n", ["positive"]),
    ("g,g',upward,5,1.0,G\n", ["side"]),
    ("g,g',midline,5,1.0,Xx\n", ["Xx"]),
    ("g,g',midline,5,1.0,G\nn,n',midline,6,1.0,G\n", ["already assigned"]),
    ("", ["no rows"]),
])
def test_tissue_malformed_table(tmp_path, body, words):
    bad = tmp_path / "fstt.csv"
    bad.write_text(HEADER + body)
    with pytest.raises(InputError) as info:
        tissue.load_table(bad)
    assert "fstt.csv" in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_tissue_missing_column(tmp_path):
    bad = tmp_path / "short.csv"
    bad.write_text("bone_landmark,mean_mm\ng,5.5\n")
    with pytest.raises(InputError, match="short.csv.*soft_landmark"):
        tissue.load_table(bad)


def test_tissue_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.csv"):
        tissue.load_table(tmp_path / "nope.csv")
