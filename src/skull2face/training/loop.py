"""The training loop: stages, epochs, steps, validation and checkpoints of one run.

Staged training: the stages are ``(resolution, epochs)`` pairs doubling up to the final
resolution; the same generator weights run at every size and each new outer level is faded in
as in progressive GANs: ``alpha`` ramps linearly from 0 to 1 over the first ``fade_fraction`` of
the stage's steps (`skull2face.model.cgan.train_step` blends the real faces the same way).

Every step takes ``batch_size`` samples of each kind present per process, in the seeded order
of `skull2face.training.data.epoch_indices`; under ``torchrun`` every rank takes its own slice
of that order, models are wrapped in DistributedDataParallel and rank 0 alone validates and
writes the run folder (``train.json``, ``metrics.jsonl``, ``loss.png``, ``last.pt``,
``best.pt``).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..dataset.reader import downsample_arrays
from ..errors import InputError
from ..io.atomic import write_json
from ..model import GanConfig, Nets, build_nets, generator_kwargs, make_denormalise, train_step
from . import checkpoints as ckpt
from .data import GROUPS, Data, base_mm, epoch_indices, load_data, stage_tensors
from .distributed import Dist, all_mean, barrier, close_group, dist_context, init_group
from .meta import data_meta
from .plots import plot_history
from .settings import LEGACY_SETTINGS, TrainSettings
from .validation import VAL_KEYS, WITHIN_MM, baseline_errors, validate


def run_training(data_dir: str | os.PathLike, out_dir: str | os.PathLike, settings: TrainSettings,
                 resume: bool = False) -> dict[str, Any]:
    """The training loop behind `skull2face.stages.train.train` (same arguments, same return
    value and errors; ``settings`` already validated)."""
    ctx = dist_context(settings.device)
    out = Path(out_dir)
    last_path, best_path = out / "last.pt", out / "best.pt"
    metrics_path = out / "metrics.jsonl"
    if not resume and last_path.exists():
        raise InputError(out, "already holds a training run (last.pt); resume it or choose another folder")
    torch.set_num_threads(settings.num_threads or max(1, (os.cpu_count() or 1) // max(1, ctx.local_world)))

    data = load_data(data_dir, settings.final_res, settings.k)
    if settings.residual and settings.base == "fit":
        for arrays in (data.train, data.val):
            lacking = arrays["id"][arrays["has_skull"] & ~arrays["has_fit"]]
            if len(lacking):
                raise InputError(data.manifest.path, f"sample {lacking[0]} has no fitted-face map (a dataset built "
                                                     "before datasets held the face-model fit): build it again, "
                                                     "or train with --base fill")
    config = GanConfig.from_settings(settings)
    stages = settings.stages()
    table = _epoch_table(stages)
    total_epochs = len(table)
    z_near, z_far, k = data.manifest.z_near, data.manifest.z_far, settings.k
    denorm = make_denormalise(z_near, z_far, k)
    n_group = {g: len(data.group_index[g]) for g in GROUPS}
    active = [g for g in GROUPS if n_group[g] > 0 and (g != "unpaired-face" or settings.use_face_discriminator)]
    per_step = settings.batch_size * ctx.world
    steps_per_epoch = math.ceil(max(n_group[g] for g in active) / per_step)
    has_val = len(data.val["id"]) > 0
    baseline = baseline_errors(data.baseline_mm, data.val)
    best_metric = "val_mae_mm" if has_val else "l1"
    fill = (settings.fill_radius_mm, settings.tissue_offset_mm) if settings.residual else None
    thickness = (settings.thickness_min_mm, settings.thickness_range_mm) if settings.residual else None

    init_group(ctx)
    try:
        nets = build_nets(config, ctx.device, ddp=ctx.world > 1)
        start_epoch, best = 0, {"epoch": None, "metric": best_metric, "value": None}
        rows: list[dict[str, Any]] = []
        if resume and last_path.exists():
            start_epoch, best, rows = _resume(last_path, metrics_path, nets, settings, data, ctx)
        elif ctx.main and metrics_path.exists():
            metrics_path.unlink()
        if ctx.main and out.is_dir():
            # Temporary files of atomic writes cut short by a kill (SIGKILL skips their cleanup).
            for tmp in out.glob(".tmp-*"):
                tmp.unlink(missing_ok=True)

        if ctx.main:
            _write_train_json(out, resume, start_epoch, settings, config, stages, steps_per_epoch, active, nets,
                              data, best_metric, baseline, ctx)

        stop = total_epochs if settings.stop_after_epochs is None else min(total_epochs, settings.stop_after_epochs)
        show = settings.progress and ctx.main
        bar = _tqdm(total=total_epochs, initial=start_epoch, desc="epochs", disable=not show, position=0)
        stage_cache: tuple[int, Any, Any] | None = None
        for epoch in range(start_epoch, stop):
            stage_idx, ep_in_stage = table[epoch]
            res, stage_epochs = stages[stage_idx]
            if stage_cache is None or stage_cache[0] != res:
                stage_cache = None  # free the previous stage first
                val_stage = downsample_arrays(data.val, res) if has_val else None
                if val_stage is not None and fill is not None:
                    val_stage["fill"] = base_mm(val_stage, fill, settings.base)
                stage_cache = (res, stage_tensors(data.train, data.group_index, res, ctx.device, fill, settings.base),
                               val_stage)
            _, tensors, val_stage = stage_cache
            idx = {g: torch.from_numpy(epoch_indices(n_group[g], steps_per_epoch, per_step, settings.seed,
                                                     epoch, gi)[:, ctx.rank * settings.batch_size:
                                                                (ctx.rank + 1) * settings.batch_size])
                   for gi, g in enumerate(GROUPS) if g in active}
            sums: dict[str, torch.Tensor] = {}
            t0 = time.perf_counter()
            alpha = 1.0
            inner = _tqdm(range(steps_per_epoch), desc=f"{res}x{res} epoch {ep_in_stage + 1}/{stage_epochs}",
                          disable=not show, leave=False, position=1)
            for i in inner:
                alpha = _alpha(stage_idx, ep_in_stage * steps_per_epoch + i, stage_epochs * steps_per_epoch,
                               settings.fade_fraction)
                batch = {g: {key: v[idx[g][i].to(v.device)] for key, v in tensors[g].items()} for g in active}
                losses = train_step(nets, batch, alpha, config, denorm, (z_near, z_far))
                for key, v in losses.items():
                    sums[key] = sums.get(key, 0.0) + v
            elapsed = time.perf_counter() - t0
            means = all_mean(torch.stack([sums[key] for key in sorted(sums)]) / steps_per_epoch, ctx)
            row = {"epoch": epoch + 1, "res": res, "stage": stage_idx + 1, "stage_epoch": ep_in_stage + 1,
                   "alpha": alpha, "steps": steps_per_epoch,
                   "samples": steps_per_epoch * settings.batch_size * len(active) * ctx.world,
                   "seconds": elapsed,
                   "samples_per_s": steps_per_epoch * settings.batch_size * len(active) * ctx.world / elapsed,
                   **{key: float(v) for key, v in zip(sorted(sums), means.tolist())}}
            bar.update(1)
            if not ctx.main:
                continue
            if has_val and ((epoch + 1) % settings.val_every == 0 or ep_in_stage + 1 == stage_epochs
                            or epoch + 1 == total_epochs):
                row.update(validate(nets.g_mod, val_stage, data.val, alpha, ctx.device, 4 * settings.batch_size,
                                    thickness, with_fit=settings.residual and settings.base == "fit"))
            else:  # same keys on every line, null when not validated
                row.update(dict.fromkeys(VAL_KEYS))
            row.update(baseline)
            score = row.get(best_metric)
            improved = score is not None and math.isfinite(score) and (best["value"] is None or score < best["value"])
            if improved:
                best = {"epoch": epoch + 1, "metric": best_metric, "value": score}
            row["best"] = improved
            rows.append(row)
            ckpt.append_metrics(metrics_path, row)
            plot_history(rows, out / "loss.png")
            ck = {
                "format": ckpt.CHECKPOINT_FORMAT, "version": ckpt.FORMAT_VERSION,
                "settings": settings.to_json(), "trajectory": ckpt.trajectory(settings),
                "world_size": ctx.world, "data_fingerprint": data.info["fingerprint"],
                "epoch": epoch + 1, "res": res, "alpha": alpha,
                "generator_kwargs": generator_kwargs(config),
                "data_meta": data_meta(data, settings),
                "G": nets.g_mod.state_dict(), "D": nets.d_mod.state_dict(),
                "DF": nets.df_mod.state_dict() if nets.df_mod is not None else None,
                "opt_G": nets.opt_g.state_dict(), "opt_D": nets.opt_d.state_dict(),
                "rng": ckpt.rng_state(), "best": best, "metrics": ckpt.jsonable_row(row),
            }
            if improved:
                ckpt.save_atomic(ck, best_path)
            ckpt.save_atomic(ck, last_path)
            if show:
                val_txt = ""
                if row.get("val_mae_mm") is not None:
                    val_txt = (f"  val {row['val_mae_mm']:.2f} mm "
                               f"(mean face {row.get('baseline_mae_mm', float('nan')):.2f})")
                bar.write(f"epoch {epoch + 1}/{total_epochs} {res}x{res} alpha {alpha:.2f}: "
                          f"G {row['g_total']:.3f} L1 {row['l1']:.4f} LA {row['la_mm']:.2f} mm "
                          f"D {row['d_cond']:.3f}{val_txt}")
        bar.close()
        epochs_done = max(start_epoch, stop)
        barrier(ctx)
        return {
            "out_dir": str(out), "epochs_done": epochs_done, "epochs_total": total_epochs,
            "completed": epochs_done >= total_epochs, "stages": [list(s) for s in stages],
            "best": best, "last": rows[-1] if rows else None, "baseline": baseline,
            "world_size": ctx.world, "device": str(ctx.device),
            "last_checkpoint": str(last_path), "best_checkpoint": str(best_path) if best_path.exists() else None,
        }
    finally:
        close_group(ctx)


def _alpha(stage_idx: int, stage_step: int, stage_steps: int, fade_fraction: float) -> float:
    """Fade-in weight of the newest level at a step of a stage (1 in the first stage)."""
    if stage_idx == 0 or fade_fraction <= 0:
        return 1.0
    fade_steps = max(1, math.ceil(fade_fraction * stage_steps))
    return min(1.0, (stage_step + 1) / fade_steps)


def _epoch_table(stages: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(stage index, epoch within stage)`` of every global epoch."""
    return [(i, e) for i, (_, n) in enumerate(stages) for e in range(n)]


def _tqdm(*args, **kwargs):
    """A tqdm bar on a terminal, periodic plain lines in a log (`skull2face.progress`)."""
    from ..progress import progress

    return progress(*args, **kwargs)


def _resume(last_path: Path, metrics_path: Path, nets: Nets, settings: TrainSettings, data: Data,
            ctx: Dist) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """Load ``last.pt`` into ``nets`` and the RNGs; ``(epochs done, best, metrics rows kept)``.

    Raises
    ------
    InputError
        Naming ``last.pt`` when its settings, data or world size differ from this run's.
    """
    ck = ckpt.load_checkpoint(last_path)  # on the CPU: RNG states must stay CPU tensors
    if ck.get("format") != ckpt.CHECKPOINT_FORMAT:
        raise InputError(last_path, "not a training checkpoint")
    mine, theirs = ckpt.trajectory(settings), {**LEGACY_SETTINGS, **ck["trajectory"]}
    diff = [f"{key} (checkpoint {theirs.get(key)!r}, now {mine.get(key)!r})"
            for key in ckpt.trajectory_diff(mine, theirs)]
    if diff:
        raise InputError(last_path, "settings differ from the run being resumed: " + "; ".join(diff))
    if ck.get("data_fingerprint") != data.info["fingerprint"]:
        raise InputError(last_path, "the dataset's training or validation samples differ from the run "
                                    "being resumed")
    if ck["world_size"] != ctx.world:
        raise InputError(last_path, f"run used {ck['world_size']} processes, now {ctx.world}: "
                                    "resume with the same number")
    nets.g_mod.load_state_dict(ck["G"])
    nets.d_mod.load_state_dict(ck["D"])
    if nets.df_mod is not None:
        nets.df_mod.load_state_dict(ck["DF"])
    nets.opt_g.load_state_dict(ck["opt_G"])
    nets.opt_d.load_state_dict(ck["opt_D"])
    ckpt.set_rng_state(ck["rng"])
    start_epoch, best = int(ck["epoch"]), dict(ck["best"])
    rows: list[dict[str, Any]] = []
    if ctx.main:
        # Lines past the checkpoint belong to an epoch that will be trained again.
        rows = [r for r in ckpt.read_metrics(metrics_path) if r["epoch"] <= start_epoch]
        ckpt.write_metrics(metrics_path, rows)
    return start_epoch, best, rows


def _write_train_json(out: Path, resume: bool, start_epoch: int, settings: TrainSettings, config: GanConfig,
                      stages: list[tuple[int, int]], steps_per_epoch: int, active: list[str], nets: Nets,
                      data: Data, best_metric: str, baseline: dict[str, Any], ctx: Dist) -> None:
    """``train.json``: every resolved setting, the data counts, the validation heads and the baseline."""
    run_info = _read_json(out / "train.json") if resume else {}
    resumes = run_info.get("resumed_at_epochs", [])
    if resume and start_epoch > 0:
        resumes.append(start_epoch)
    write_json(out / "train.json", {
        "format": "skull2face-train", "version": ckpt.FORMAT_VERSION,
        "settings": settings.to_json(),
        "stages": [list(s) for s in stages],
        "epochs_total": sum(n for _, n in stages),
        "steps_per_epoch": steps_per_epoch,
        "samples_per_step": {g: settings.batch_size for g in active},
        "generator_kwargs": generator_kwargs(config),
        "discriminator_kwargs": {"base": settings.d_base, "n_layers": settings.d_layers,
                                 "conditional_in_ch": 3, "face_in_ch": 1},
        "parameters": {"G": _n_params(nets.g_mod), "D": _n_params(nets.d_mod),
                       "D_face": _n_params(nets.df_mod) if nets.df_mod is not None else 0},
        "data": data.info,
        "validation": {"metric": best_metric, "at_resolution": settings.final_res, "within_mm": WITHIN_MM,
                       **baseline},
        "world_size": ctx.world, "device": str(ctx.device), "threads": torch.get_num_threads(),
        "torch": str(torch.__version__), "resumed_at_epochs": resumes,
    })


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


__all__ = ["run_training"]
