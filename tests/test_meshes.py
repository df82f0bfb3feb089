"""Mesh I/O: formats, unit checks and clear errors."""

import numpy as np
import pytest
import trimesh

from skull2face.errors import InputError
from skull2face.io.meshes import load_mesh, save_mesh


@pytest.fixture
def head_sized():
    return trimesh.creation.icosphere(subdivisions=3, radius=90.0)


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".stl", ".off", ".glb"])
def test_round_trip(head_sized, tmp_path, suffix):
    path = save_mesh(head_sized, tmp_path / f"head{suffix}")
    back = load_mesh(path)
    assert len(back.faces) == len(head_sized.faces)
    np.testing.assert_allclose(np.sort(back.vertices, axis=0), np.sort(head_sized.vertices, axis=0), atol=1e-4)


@pytest.mark.parametrize("scale, word", [(0.001, "metres"), (1000.0, "micrometres"), (0.1, "centimetres")])
def test_wrong_units_are_refused(head_sized, tmp_path, scale, word):
    m = head_sized.copy()
    m.apply_scale(scale)
    path = save_mesh(m, tmp_path / "scaled.ply")
    with pytest.raises(InputError, match=f"scaled.ply: .*{word}"):
        load_mesh(path)
    assert load_mesh(path, units_check=False) is not None


def test_empty_missing_degenerate(tmp_path):
    with pytest.raises(InputError, match="gone.ply: file not found"):
        load_mesh(tmp_path / "gone.ply")
    (tmp_path / "zero.stl").write_bytes(b"")
    with pytest.raises(InputError, match="zero.stl: file is empty"):
        load_mesh(tmp_path / "zero.stl")
    (tmp_path / "junk.ply").write_bytes(b"ply\nformat nonsense\n")
    with pytest.raises(InputError, match="junk.ply: "):
        load_mesh(tmp_path / "junk.ply")
    flat = trimesh.Trimesh([[0, 0, 0], [100, 0, 0], [200, 0, 0]], [[0, 1, 2]], process=False)
    flat.export(tmp_path / "flat.ply")
    with pytest.raises(InputError, match="flat.ply: "):
        load_mesh(tmp_path / "flat.ply")
    with pytest.raises(InputError, match="mesh.xyz: unsupported mesh format"):
        (tmp_path / "mesh.xyz").write_text("1 2 3")
        load_mesh(tmp_path / "mesh.xyz")


def test_save_is_atomic_and_leaves_no_temp(head_sized, tmp_path):
    save_mesh(head_sized, tmp_path / "a.ply")
    assert [p.name for p in tmp_path.iterdir()] == ["a.ply"]
