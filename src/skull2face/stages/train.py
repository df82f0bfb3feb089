"""Train the skull2face conditional GAN on a dataset folder, in resolution stages.

This stage holds the `train` entry and the command line; its settings, `TrainSettings`, are
`skull2face.training.settings` (re-exported here). The
networks and one GAN step are `skull2face.model.cgan`; data, validation, checkpoints, the plot
and the loop are `skull2face.training`.

The objective (Knyaz et al. 2020: ``min_G max_D L_cGAN + lambda1 L1 + lambda2 L_A``, plus a
face-mask term) and what each kind of sample (paired, unpaired skulls, unpaired faces) pays
in one optimisation step are described in `skull2face.model.cgan`.

Discriminators see the generated face composited with its predicted mask
(`GeneratorOutput.composite`), since real face maps are 0 off the face.

Residual mode (``residual``, the default): the generator's ``face`` output ``o`` in [0, 1] is
not the face height but the soft-tissue thickness ``T = thickness_min_mm + o *
thickness_range_mm`` (default 0 to 60 mm) above a base surface ``B``: the *filled skull*
(`skull2face.geometry.fill.filled_height`: the skull height in mm with holes and pits narrower
than a ``fill_radius_mm`` disc bridged, optionally offset outwards along the bone normal by
``tissue_offset_mm``, nearest value off the bone; computed once per sample at every stage
resolution). The face ``B + T`` is normalised again by `skull2face.geometry.codec.residual_face`
(differentiable) and used
wherever the face map is used: L1 (still in normalised units), both discriminators, L_A and
validation. The output biases start at ``init_thickness_mm``, so an untrained generator already
predicts "skull plus a usual tissue layer". With a single real training head, absolute face
heights do not transfer to a new head; tissue thickness does far better. Checkpoints written
before this mode existed are non-residual.

Staged training: the schedule lists ``resolution:epochs`` pairs, from 8x8 doubling up to
``final_res``; the same generator weights run at every size (`UNetGenerator`) and each new
outer level is faded in as in progressive GANs: ``alpha`` ramps linearly from 0 to 1 over the
first ``fade_fraction`` of the stage's steps, and the real faces shown to the discriminators
are blended the same way (average-pooled then upsampled, mixed with the full-resolution face by
``alpha``). ``staged=False`` trains at ``final_res`` from the start for the same total number of
epochs (the comparison the paper's staging claim calls for).

Outputs in the run folder (rank 0 only):

``train.json``
    Every resolved setting, the data counts, the validation heads and the baseline.
``metrics.jsonl``
    One JSON line per epoch: mean losses, and (on validation epochs) the error in mm of the
    predicted face height on the real held-out head(s) next to a trivial baseline.
``loss.png``
    Losses and validation error vs epoch.
``last.pt``, ``best.pt``
    Checkpoints (every epoch / lowest validation error), written atomically; ``last.pt`` holds
    everything needed to resume exactly: models, optimisers, RNG states and counters.

Validation: the samples with ``split == "test"``, ``real == true`` and a face (the honest
targets of ``docs/dataset-format.md``). The prediction at the current stage's resolution is
converted to mm, upsampled bilinearly to ``final_res`` and compared with the true face height
over the true face mask: mean absolute error, RMSE and the fraction of pixels within 2.5 mm.
The baseline predicts, for every head, the mean training face map (per-pixel mean height of
every training face covering the pixel).

Distributed training: launch with ``torchrun --nproc_per_node=N -m skull2face train --data D
--out O ...``. The process group (gloo on CPU, nccl on CUDA) is set up from the ``RANK`` /
``WORLD_SIZE`` environment; models are wrapped in `DistributedDataParallel`; every rank takes
its own slice of the same seeded per-epoch permutation (``batch_size`` is per process);
rank 0 alone validates and writes files.
"""

from __future__ import annotations

import os
from typing import Any

from ..training.settings import DEFAULT_SCHEDULE, TrainSettings  # re-exported: the command's settings


# --------------------------------------------------------------------------------------------
# Training (the loop is skull2face.training.loop)
# --------------------------------------------------------------------------------------------


def train(data_dir: str | os.PathLike, out_dir: str | os.PathLike, settings: TrainSettings | None = None,
          resume: bool = False) -> dict[str, Any]:
    """Train skull2face on a dataset folder; works alone or under ``torchrun``.

    Parameters
    ----------
    data_dir : path-like
        Dataset folder (``docs/dataset-format.md``).
    out_dir : path-like
        Run folder for ``train.json``, ``metrics.jsonl``, ``loss.png``, ``last.pt`` and
        ``best.pt`` (created if needed).
    settings : TrainSettings, optional
        Default `TrainSettings()`.
    resume : bool
        Continue the run in ``out_dir`` from ``last.pt`` (a fresh start when there is none).
        The weights then equal those of an unbroken run, given the same settings (those in
        `skull2face.training.checkpoints.FREE_ON_RESUME` may change), world size and hardware.

    Returns
    -------
    dict
        ``out_dir``, ``epochs_done``, ``epochs_total``, ``completed`` (all epochs done),
        ``stages``, ``best`` (epoch, metric name and value), ``last`` (the last metrics line),
        ``baseline`` (validation error of the mean training face), ``world_size``, ``device``,
        ``last_checkpoint`` and ``best_checkpoint``. Every rank returns it; only rank 0's
        ``last`` is filled.

    Raises
    ------
    InputError
        Bad dataset (see `skull2face.dataset.reader`), ``out_dir`` already holding a run when
        ``resume`` is False, or a checkpoint that does not match the settings.
    """
    import contextlib

    from ..io.run_folder import check_out, run_folder
    from ..training.loop import run_training

    settings = settings or TrainSettings()
    settings.validate()
    check_out(out_dir, [data_dir])
    # rank 0 alone writes the run folder, so it alone claims it (in place: a killed run resumes from it)
    main = int(os.environ.get("RANK", "0")) == 0
    with run_folder(out_dir, "train", [data_dir], replace=False) if main else contextlib.nullcontext():
        return run_training(data_dir, out_dir, settings, resume=resume)


def echo(summary: dict[str, Any]) -> str:
    """What ``skull2face train`` prints (rank 0 only, under torchrun): where the run went and its best."""
    if int(os.environ.get("RANK", "0")) != 0:
        return ""
    best = summary.get("best")
    return (f"wrote checkpoints, metrics.jsonl, loss.png and train.json to {summary['out_dir']}"
            + (f"; best validation {best}" if best else ""))


__all__ = ["DEFAULT_SCHEDULE", "TrainSettings", "echo", "train"]
