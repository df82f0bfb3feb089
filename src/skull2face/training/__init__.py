"""Training the skull2face cGAN on a dataset folder (the loop around `skull2face.model`).

``data``
    The dataset's arrays at the final resolution, per-stage tensors, the seeded sample order
    and the filled skulls of residual mode.
``distributed``
    Rank, world size and device from the ``torchrun`` environment; the process group.
``validation``
    Errors in mm of the predicted face height on the real held-out heads, and of the
    mean-face baseline.
``checkpoints``
    Atomic checkpoints, RNG states, metrics lines, the resume check, and the exported
    generator (`checkpoints.export_generator`, `checkpoints.load_generator`).
``meta``
    `meta.ModelMeta`: what a trained generator needs besides its weights, typed and checked.
``plots``
    ``loss.png``.
``settings``
    `settings.TrainSettings`: every setting of a run, each a command-line option.
``loop``
    `loop.run_training`: stages, epochs, steps, validation and checkpoints of one run.

The command is `skull2face.stages.train` (it re-exports `TrainSettings`). Nothing is imported
here, so that ``skull2face.training.meta`` and ``settings`` stay free of torch; import the
submodule you need.
"""
