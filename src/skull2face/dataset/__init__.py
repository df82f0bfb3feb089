"""Training datasets: the folder written by ``skull2face dataset build`` and read for training.

The folder layout and ``manifest.json`` are specified in ``docs/dataset-format.md``.

The modules that build the folder live beside the reader.

``reader``
    Torch-free loading: `reader.load_manifest` validates ``manifest.json``;
    `reader.load_arrays` turns a list of samples into stacked numpy arrays ready for a
    network (normalised skull / face maps, masks, anthropological-loss targets in pixels);
    `reader.downsample_arrays` makes the lower-resolution copies used by staged training.

Nothing is imported here so that ``import skull2face.dataset`` stays cheap; import the
submodule you need.
"""
