"""Today's outputs on both bundled real heads, pinned before the restructure (issue 10).

``tests/pinned/make_pins.py`` wrote ``tests/pinned/outputs.npz`` from the code as it stood
before the modules were split and the duplicated algorithms merged; this test recomputes the
same figures through the user-facing stages and asserts they did not move: landmarks within
0.01 mm, face maps within 0.01 mm on every pixel (and the same pixels), metrics within 0.01 mm.

Re-pinned since, on purpose (``make_pins.py --only``):

- ``arothron_skull_landmarks``, when the coarse pose of a mesh in unknown pose moved onto the
  one mid-sagittal plane search (`skull2face.geometry.symmetry.search_plane`, which detection
  already used) from its own iterated mirror matching. On this skull (no mandible, about as
  broad as high) both searches settle ~34 degrees off its symmetry plane, and detection's
  refinement turns the frame back from there; the different start shifts the mid-sagittal
  outline's rays and the most-lateral picks: Fmt_L 2.5, Zy_R 2.3, Da_L 2.1, Zy_L 1.6, G 0.7,
  Pr 0.6, Ns 0.6, N 0.2 mm; the other landmarks do not move. No other pinned output goes
  through that pose (the CT heads use their LPS axes).
- every key, for issue 14 (same skull, same landmarks): the coarse pose samples the surface
  evenly and independently of its storage and scans all plane normals (it now finds the
  Arothron skull's symmetry plane, not one ~34 degrees off); detection's symmetry sample takes
  the vertices in the order of their coordinates, not of the file, and lids likewise; the
  pitch correction may reach 45 degrees (was 30); Zy, Fmt, zy', go' are the centre of the
  1 mm plateau of the extreme, not the vertex nearest it. Landmarks moved (mm, largest):
  Arothron Fmt 11.5, Zy 9.2-9.8, Da 6.3, Pr 5.5, Ns 3.8, G 0.5, N 0.3 (the old ones came from
  the wrong plane; the new ones agree with detection from the pose read off pictures of it);
  cranium skull Fmt_R 4.7, Ns 3.1, others <= 1.3; headsq skull <= 1.8; cranium skin
  <= 2.0 (al); headsq skin t_R 4.9, zy'_L 2.3, others <= 1.3. Face maps follow the skull
  landmarks (mean-face and headsq nearest-skull maps unchanged); metrics (RMSE mm, old ->
  new): cranium skull2face 5.78 -> 5.68, tissue-depth 7.10 -> 7.01, mean-face 5.84 -> 5.74,
  nearest-skull 6.57 -> 5.38; headsq skull2face 4.70 -> 4.78, tissue-depth 6.65 -> 6.78,
  mean-face 4.61 -> 4.76, nearest-skull 1.34 -> 1.58 (the skin landmarks also place the
  scored region, so an unchanged map can score differently).
- the four ``*_skull2face_*`` keys, for issue 11: the bundled default model was retrained to
  correct the face-model fit (``base: fit``) instead of the filled skull + 8 mm. It has seen
  both bundled heads, so these figures pin behaviour, not accuracy (RMSE mm, old -> new:
  headsq 4.78 -> 4.76, cranium 5.68 -> 4.42); and the eight ``*_mean-face_*`` and
  ``*_nearest-skull_*`` keys, whose reference maps (mean training face, reference pairs) come
  from the same model file's new dataset (mean-face 4.76 -> 4.69 and 5.74 -> 5.51,
  nearest-skull 1.58 -> 1.38 and 5.38 -> 5.05; headsq and cranium).
- the four ``*_skull2face_*`` and the ``*_mean-face_*`` keys, for issue 20: skull2face writes the
  fitted whole head moved by its correction as far as the model file's fold gains trust it (the
  retrained bundled model trusts nose 0.22 and mouth 1.0, nothing elsewhere), no longer the
  mesh of the generator's frontal map; the model was retrained with the demo's sizes, so the
  mean training face moved too (RMSE mm, old -> new: skull2face headsq 4.76 -> 3.01, cranium
  4.42 -> 3.59; mean-face 4.69 -> 4.66 and 5.52 -> 5.51; nearest-skull unchanged).
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "pinned"))
from pinning import compute  # noqa: E402

PINNED = Path(__file__).parent / "pinned" / "outputs.npz"


@pytest.fixture(scope="module")
def now(tmp_path_factory):
    return compute(tmp_path_factory.mktemp("pins"))


@pytest.fixture(scope="module")
def pinned():
    with np.load(PINNED) as z:
        return {k: z[k] for k in z.files}


def test_the_same_arrays_are_computed(now, pinned):
    assert sorted(now) == sorted(pinned)


@pytest.mark.parametrize("key", ["arothron_skull_landmarks", "headsq_skull_landmarks", "headsq_skin_landmarks",
                                 "cranium_skull_landmarks", "cranium_skin_landmarks"])
def test_landmarks_unchanged(now, pinned, key):
    a, b = now[key], pinned[key]
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{key}: a landmark appeared or vanished"
    ok = ~np.isnan(b)
    assert np.abs(a[ok] - b[ok]).max(initial=0.0) < 0.01, key


@pytest.mark.parametrize("head", ["headsq", "cranium"])
@pytest.mark.parametrize("method", ["skull2face", "tissue-depth", "mean-face", "nearest-skull"])
def test_face_maps_and_metrics_unchanged(now, pinned, head, method):
    a, b = now[f"{head}_{method}_face"], pinned[f"{head}_{method}_face"]
    assert np.array_equal(np.isfinite(a), np.isfinite(b)), f"{head}/{method}: the face covers other pixels"
    ok = np.isfinite(b)
    assert np.abs(a[ok] - b[ok]).max(initial=0.0) < 0.01
    assert np.allclose(now[f"{head}_{method}_metrics"], pinned[f"{head}_{method}_metrics"], atol=0.01, rtol=0)
