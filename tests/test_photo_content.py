"""A photograph's content: alpha composited as viewers show it; landmarks that can be a face in it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from skull2face.errors import InputError
from skull2face.io.photo import check_face_layout, read_photo

FACE = {"n": (120.0, 250.0), "en_L": (150.0, 270.0), "en_R": (90.0, 270.0), "sn": (120.0, 380.0),
        "me": (120.0, 500.0)}


def _texture(shape=(600, 480), seed=0) -> np.ndarray:
    smooth = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 6.0)
    return np.clip(128 + 60 * smooth / smooth.std(), 0, 255).astype(np.uint8)


def test_alpha_is_composited_over_white(tmp_path):
    grey = _texture()
    bgra = np.zeros(grey.shape + (4,), np.uint8)
    bgra[..., :3] = grey[..., None]
    bgra[:, :240, 3] = 255  # the left half opaque
    bgra[:, 240:, :3] = 0  # black under the transparent half
    bgra[:, 300:, 3] = 128  # half transparent from x = 300
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    rgb = read_photo(tmp_path / "a.png")
    np.testing.assert_array_equal(rgb[:, :240, 0], grey[:, :240])  # opaque: as stored
    assert np.all(rgb[:, 240:300] == 255)  # transparent: white, not the black under it
    assert np.all(np.abs(rgb[:, 300:].astype(int) - 128) <= 1)  # 50 % black over white


def test_fully_transparent_photo_is_refused(tmp_path):
    bgra = np.zeros((200, 200, 4), np.uint8)
    bgra[..., :3] = _texture((200, 200))[..., None]
    cv2.imwrite(str(tmp_path / "t.png"), bgra)
    with pytest.raises(InputError, match="fully transparent"):
        read_photo(tmp_path / "t.png")


def test_face_layout_accepts_a_face_and_a_rolled_face():
    photo = np.repeat(_texture()[..., None], 3, axis=2)
    pts = {k: np.array(v) for k, v in FACE.items()}
    check_face_layout("f.csv", pts, photo)
    c, a = np.array([120.0, 375.0]), np.radians(30.0)  # the head tilted by 30 degrees in the picture
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    check_face_layout("f.csv", {k: c + rot @ (v - c) for k, v in pts.items()}, photo)
    check_face_layout("f.csv", {"en_L": pts["en_L"], "en_R": pts["en_R"]}, photo)  # too few to judge: passes


@pytest.mark.parametrize("change, words", [
    ({"en_L": FACE["en_R"], "en_R": FACE["en_L"]}, "mirrored"),
    ({"sn": (120.0, 560.0)}, "out of order"),
    ({"n": FACE["me"], "me": FACE["n"]}, "below subnasale"),
    ({"en_L": (150.0, 420.0)}, "en_L lies below subnasale"),
    ({"n": (120.0, 490.0)}, "too small"),
])
def test_face_layout_refuses_what_is_not_a_face(change, words):
    photo = np.repeat(_texture()[..., None], 3, axis=2)
    pts = {k: np.array(v) for k, v in {**FACE, **change}.items()}
    with pytest.raises(InputError, match=words) as info:
        check_face_layout("f.csv", pts, photo)
    assert str(info.value).startswith("f.csv")


def test_face_layout_refuses_landmarks_on_a_blank_part():
    grey = _texture()
    grey[:, 200:] = 128
    with pytest.raises(InputError, match="blank where the landmarks lie"):
        check_face_layout("f.csv", {k: np.array(v) + [240.0, 0.0] for k, v in FACE.items()},
                          np.repeat(grey[..., None], 3, axis=2))
