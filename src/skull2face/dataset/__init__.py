"""Training datasets: the folder written by ``skull2face dataset build`` and read for training.

The folder layout and ``manifest.json`` are specified in ``docs/dataset-format.md``.

``build``            real pairs from CTs, synthetic pairs, unpaired skulls and faces, split by head
``synthetic``        synthetic pairs: shape warps and drawn tissue thickness
``tissue_rescale``   rescaling the soft tissue of a head to drawn thicknesses
``faces``            unpaired real faces and Surrey Face Model samples
``report``           the population's thickness against the published table
``reader``           torch-free loading: `reader.load_manifest`, `reader.load_arrays`,
                     `reader.downsample_arrays`

Nothing is imported here so that ``import skull2face.dataset`` stays cheap; import the
submodule you need.
"""
