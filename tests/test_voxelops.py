"""The threaded voxel operations return exactly what the single scipy call returns."""

import numpy as np
import pytest
from scipy import ndimage

from skull2face.geometry import voxelops

CROSS = ndimage.generate_binary_structure(3, 1)
EDGES = ndimage.generate_binary_structure(3, 2)
FULL = ndimage.generate_binary_structure(3, 3)


def blobs(seed, shape, sigma, level):
    """A random mask of blobs, holes and specks (smoothed noise above a level)."""
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), sigma) > level


MASKS = [blobs(s, shape, sigma, level) for s, (shape, sigma, level) in enumerate([
    ((40, 50, 36), 1.5, 0.5), ((67, 33, 45), 2.5, 0.49), ((80, 24, 30), 0.8, 0.52),
    ((35, 41, 70), 1.0, 0.5), ((17, 60, 20), 2.0, 0.5)])]


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
@pytest.mark.parametrize("structure", [CROSS, EDGES, FULL], ids=["6", "18", "26"])
def test_components_are_scipys_labels(workers, structure):
    for mask in MASKS:
        labels, n = ndimage.label(mask, structure=structure)
        comps = voxelops.Components(mask, structure, workers)
        assert comps.n == n
        assert np.array_equal(comps.labels(), labels)  # same numbers, in scipy's order
        assert np.array_equal(comps.sizes, np.bincount(labels.ravel(), minlength=n + 1))
        for ids in ([1], [n], list(range(1, n + 1, 3)), list(range(1, n + 1, 2)), []):
            assert np.array_equal(comps.select(ids), np.isin(labels, ids) & (labels > 0))


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_largest_component_is_scipys_first_largest(workers):
    for mask in MASKS:
        labels, n = ndimage.label(mask, structure=CROSS)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        best, size = voxelops.largest_component(mask, CROSS, workers)
        assert size == sizes.max()
        assert np.array_equal(best, labels == np.argmax(sizes))
    # a tie goes to the component scipy numbers first, wherever the slabs are cut
    tie = np.zeros((64, 20, 20), dtype=bool)
    tie[40:50, 5:10, 5:10] = True
    tie[10:20, 5:10, 5:10] = True
    best, size = voxelops.largest_component(tie, CROSS, workers)
    assert size == 250 and best[10:20, 5:10, 5:10].all() and best.sum() == 250
    empty = np.zeros((30, 30, 30), dtype=bool)
    assert voxelops.largest_component(empty, CROSS, workers)[1] == 0


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_morphology_is_scipys(workers):
    for mask in MASKS:
        for it in (1, 2, 3):
            assert np.array_equal(voxelops.binary_opening(mask, CROSS, it, workers),
                                  ndimage.binary_opening(mask, structure=CROSS, iterations=it))
            assert np.array_equal(voxelops.binary_dilation(mask, CROSS, it, workers),
                                  ndimage.binary_dilation(mask, structure=CROSS, iterations=it))
            # other structures go to scipy, slab by slab
            assert np.array_equal(voxelops.binary_dilation(mask, FULL, it, workers),
                                  ndimage.binary_dilation(mask, structure=FULL, iterations=it))
    with pytest.raises(ValueError, match="iterations"):
        voxelops.binary_dilation(MASKS[0], CROSS, 0)


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_slice_fills_are_scipys_fill_of_every_slice(workers):
    for mask in MASKS:
        for axis in range(3):
            ref = np.stack([ndimage.binary_fill_holes(s) for s in np.moveaxis(mask, axis, 0)])
            assert np.array_equal(voxelops.fill_slice_holes(mask, axis, workers), np.moveaxis(ref, 0, axis))
        assert np.array_equal(voxelops.fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_labels_that_do_not_fit_16_bits_fall_back_to_32():
    mask = np.zeros((2, 300, 500), dtype=bool)
    mask[0, ::2, ::2] = True  # 37,500 specks in each plane, apart: 75,000 labels in all
    mask[1, 1::2, 1::2] = True
    labels, n = voxelops._label(mask, CROSS)
    assert n == 75_000 and labels.dtype == np.int32
    small, n_small = voxelops._label(mask[:1, :100], CROSS)
    assert n_small == 12_500 and small.dtype == np.uint16
    comps = voxelops.Components(mask, CROSS, workers=2)
    assert comps.n == 75_000 and np.array_equal(comps.labels(), ndimage.label(mask, structure=CROSS)[0])
