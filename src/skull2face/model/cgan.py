"""The skull2face conditional GAN: its networks, optimisers and one optimisation step.

Objective (Knyaz et al. 2020): ``min_G max_D L_cGAN + lambda1 L1 + lambda2 L_A``, plus a face-mask
term because our generator also predicts where the face is (see `skull2face.model.networks`).

Every step takes a batch of each kind of sample present:

- **paired** (skull + its face): the conditional discriminator D sees
  ``concat(skull, skull mask, face)`` with the real face (real) and with the generated face
  (fake); the generator pays the adversarial loss, ``lambda1`` times the L1 error of the face
  map over the true face mask (normalised units), and ``lambda_mask`` times the binary
  cross-entropy of its face-mask logit;
- **unpaired skulls**: the generated face is a fake for D (there is no real one to pair it
  with) and the generator pays the adversarial loss plus ``lambda2`` times the anthropological
  loss L_A, in mm (`skull2face.model.losses.anthropological_loss`). L_A also applies to paired
  skulls unless ``la_on_paired`` is off;
- **unpaired faces**: with ``use_face_discriminator``, a second, unconditional discriminator
  learns real faces (unpaired and paired) against generated ones, and the generator also pays
  its adversarial loss.

Discriminators see the generated face composited with its predicted mask
(`GeneratorOutput.composite`), since real face maps are 0 off the face.

Residual mode (``residual``): the generator's ``face`` output ``o`` in [0, 1] is the soft-tissue
thickness ``thickness_min_mm + o * thickness_range_mm`` above the filled skull; the face is
normalised again by `skull2face.geometry.codec.residual_face` (differentiable) and used wherever
the face map is used. The output biases start at ``init_thickness_mm``.

Fade-in (progressive GANs): with ``alpha < 1`` the newest generator level is blended with the
level below, and the real faces shown to the discriminators are blended the same way.

This module knows tensors only: the training loop (`skull2face.training.loop`) feeds it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry.codec import residual_face
from .losses import anthropological_loss, gan_loss, masked_l1
from .networks import PatchDiscriminator, UNetGenerator, init_weights


@dataclass(frozen=True)
class GanConfig:
    """What the networks and one GAN step need (a subset of a training run's settings).

    Attributes
    ----------
    max_res, min_res : int
        Largest and smallest generator resolution (pixels, powers of two): the last and the
        first stage of the schedule.
    g_base, g_max_ch : int
        Generator channels at 256x256 and channel cap.
    g_dropout : float
        Generator decoder dropout at <= 8x8.
    d_base, d_layers : int
        Discriminator channels of the first layer and number of stride-2 layers.
    use_face_discriminator : bool
        Train the unconditional face discriminator too.
    seed : int
        Seed of the initial weights.
    lr : float
        Adam learning rate of G and the Ds.
    betas : (float, float)
        Adam betas.
    gan_mode : {"lsgan", "vanilla"}
    lambda1, lambda2, lambda_mask : float
        Weights of L1 (normalised units), L_A (mm) and the face-mask cross-entropy.
    la_on_paired : bool
        Apply L_A to paired skulls too.
    k : float
        Depth exponent of the normalised maps.
    residual : bool
        The generator predicts soft-tissue thickness above a base surface.
    base : {'fit', 'fill'}
        The base surface of residual mode: ``fit``, the face-model fit over the skull (also a
        third input channel of the generator); ``fill``, the filled skull (offset).
    thickness_range_mm, thickness_min_mm, init_thickness_mm : float, mm
        Residual mode: thickness of generator outputs 0 to 1 is ``thickness_min_mm`` to
        ``thickness_min_mm + thickness_range_mm``; an untrained generator predicts
        ``init_thickness_mm``.
    """

    max_res: int
    min_res: int
    g_base: int
    g_max_ch: int
    g_dropout: float
    d_base: int
    d_layers: int
    use_face_discriminator: bool
    seed: int
    lr: float
    betas: tuple[float, float]
    gan_mode: str
    lambda1: float
    lambda2: float
    lambda_mask: float
    la_on_paired: bool
    k: float
    residual: bool
    base: str
    thickness_range_mm: float
    thickness_min_mm: float
    init_thickness_mm: float

    @classmethod
    def from_settings(cls, settings: Any) -> GanConfig:
        """The config of a run's settings (`skull2face.training.settings.TrainSettings` or alike).

        Every field is read from the attribute of the same name, except ``max_res``
        (``settings.final_res``) and ``min_res`` (the first resolution of ``settings.stages()``).
        """
        derived = {"max_res": settings.final_res, "min_res": settings.stages()[0][0]}
        return cls(**{f.name: derived[f.name] if f.name in derived else getattr(settings, f.name)
                      for f in dataclasses.fields(cls)})


def generator_kwargs(config: GanConfig) -> dict[str, Any]:
    """Keyword arguments of the `UNetGenerator` a run with this config trains."""
    return {"in_ch": 3 if config.base == "fit" else 2, "out_ch": 1, "base": config.g_base, "max_ch": config.g_max_ch,
            "max_res": config.max_res, "min_res": config.min_res, "predict_mask": True,
            "norm": "instance", "dropout": config.g_dropout}


@dataclass
class Nets:
    """The generator, discriminators and optimisers of a run.

    ``g``, ``d`` and ``df`` are what the training step calls (DistributedDataParallel wrappers
    when distributed); ``g_mod``, ``d_mod`` and ``df_mod`` are the plain modules (for
    checkpoints, validation, and the discriminator passes of the generator update, which must not
    go through DDP: D gets no gradient there). ``df`` is None without a face discriminator.
    """

    g_mod: UNetGenerator
    d_mod: PatchDiscriminator
    df_mod: PatchDiscriminator | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    g: nn.Module
    d: nn.Module
    df: nn.Module | None


def build_nets(config: GanConfig, device: torch.device, ddp: bool = False) -> Nets:
    """Fresh, pix2pix-initialised networks and Adam optimisers (seeded by ``config.seed``).

    In residual mode the generator's face outputs start at ``init_thickness_mm`` (their bias).

    Parameters
    ----------
    config : GanConfig
    device : torch.device
    ddp : bool
        Wrap the trained modules in DistributedDataParallel (the process group must exist).
    """
    torch.manual_seed(config.seed)
    g = init_weights(UNetGenerator(**generator_kwargs(config)))
    if config.residual:
        # Every output level starts at sigmoid(bias) = init_thickness / thickness_range: an
        # untrained generator puts a plausible soft-tissue layer on the filled skull.
        p0 = (config.init_thickness_mm - config.thickness_min_mm) / config.thickness_range_mm
        with torch.no_grad():
            for conv in g.to_rgb.values():
                conv.bias[0] = math.log(p0 / (1.0 - p0))
    g = g.to(device)
    d_kw = {"base": config.d_base, "n_layers": config.d_layers}
    d = init_weights(PatchDiscriminator(generator_kwargs(config)["in_ch"] + 1, **d_kw)).to(device)
    df = init_weights(PatchDiscriminator(1, **d_kw)).to(device) if config.use_face_discriminator else None
    opt_g = torch.optim.Adam(g.parameters(), lr=config.lr, betas=config.betas)
    # One Adam over both discriminators: Adam is per parameter, so this equals two optimisers.
    d_params = list(d.parameters()) + (list(df.parameters()) if df is not None else [])
    opt_d = torch.optim.Adam(d_params, lr=config.lr, betas=config.betas)
    wg, wd, wdf = g, d, df
    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        # The outer generator levels are idle until their stage and the R/2 path goes idle once a
        # fade-in ends: DDP must look for unused parameters.
        wg = DDP(g, device_ids=ids, find_unused_parameters=True)
        wd = DDP(d, device_ids=ids)
        wdf = DDP(df, device_ids=ids) if df is not None else None
    return Nets(g, d, df, opt_g, opt_d, wg, wd, wdf)


def _fade_real(face: torch.Tensor, alpha: float) -> torch.Tensor:
    """Real maps blended like the generator's faded output (progressive-GAN fade-in)."""
    low = F.interpolate(F.avg_pool2d(face, 2), scale_factor=2, mode="bilinear")
    return torch.lerp(low, face, alpha)


def _set_requires_grad(module: nn.Module | None, flag: bool) -> None:
    if module is not None:
        for p in module.parameters():
            p.requires_grad_(flag)


def train_step(
    nets: Nets,
    batch: dict[str, dict[str, torch.Tensor]],
    alpha: float,
    config: GanConfig,
    denormalise,
    z_range: tuple[float, float] | None = None,
) -> dict[str, torch.Tensor]:
    """One discriminator update followed by one generator update.

    Parameters
    ----------
    nets : Nets
    batch : dict
        ``batch["paired"]`` (required): ``x`` (B, 2, R, R) = concat(skull, skull mask),
        ``face`` and ``face_mask`` (B, 1, R, R), ``la_px`` (B, L, 2), ``la_height`` (B, L),
        ``la_valid`` (B, L); optional ``face_weight`` (B, 1, R, R) in [0, 1], how much each
        face pixel counts in L1 and in the silhouette's loss (default 1). Optional ``batch["unpaired-skull"]`` (``x`` and ``la_*``) and
        ``batch["unpaired-face"]`` (``face``). float32 maps, normalised units. In residual
        mode the skull kinds also carry ``fill`` (B, 1, R, R), their filled skull heights in mm.
    alpha : float in [0, 1]
        Fade-in weight of the newest generator level (1: no fade).
    config : GanConfig
    denormalise : callable
        `skull2face.model.make_denormalise` for the dataset's depth range and k (for L_A in mm).
    z_range : (float, float), optional
        The dataset's ``(z_near, z_far)``; required in residual mode, where the generator's
        output becomes the face map through `skull2face.geometry.codec.residual_face`.

    Returns
    -------
    dict of str to torch.Tensor
        Detached scalar losses: ``d_cond``, ``d_face``, ``g_adv``, ``l1`` (normalised units),
        ``mask_bce``, ``la_mm`` and ``g_total``.
    """
    mode = config.gan_mode
    paired = batch["paired"]
    uskull = batch.get("unpaired-skull")
    uface = batch.get("unpaired-face")
    n_p = paired["x"].shape[0]
    fading = alpha < 1.0
    x = paired["x"] if uskull is None else torch.cat([paired["x"], uskull["x"]])
    # One generator pass over every skull; instance norm works per sample, so batching paired
    # and unpaired skulls together changes nothing but speed.
    out = nets.g(x, alpha)
    if config.residual:
        if z_range is None:
            raise ValueError("residual mode needs z_range=(z_near, z_far)")
        fill = paired["fill"] if uskull is None else torch.cat([paired["fill"], uskull["fill"]])
        out = out._replace(face=residual_face(out.face, fill, config.thickness_range_mm, z_range[0],
                                              z_range[1], config.k, thickness_min_mm=config.thickness_min_mm))
    fake = out.composite()
    real_p = _fade_real(paired["face"], alpha) if fading else paired["face"]

    # Discriminator update. Real and fake go through each D in one pass (one DDP forward per
    # backward; spectral norm does not depend on the batch).
    _set_requires_grad(nets.d_mod, True)
    _set_requires_grad(nets.df_mod, True)
    fake_d = fake.detach()
    logits = nets.d(torch.cat([torch.cat([paired["x"], real_p], 1), torch.cat([x, fake_d], 1)]))
    loss_d = 0.5 * (gan_loss(logits[:n_p], True, mode) + gan_loss(logits[n_p:], False, mode))
    loss_df = torch.zeros((), device=x.device)
    if nets.df is not None:
        reals = [real_p]
        if uface is not None:
            reals.append(_fade_real(uface["face"], alpha) if fading else uface["face"])
        reals = torch.cat(reals)
        logits_f = nets.df(torch.cat([reals, fake_d]))
        n_r = reals.shape[0]
        loss_df = 0.5 * (gan_loss(logits_f[:n_r], True, mode) + gan_loss(logits_f[n_r:], False, mode))
    nets.opt_d.zero_grad(set_to_none=True)
    (loss_d + loss_df).backward()
    nets.opt_d.step()

    # Generator update: the Ds are frozen and called unwrapped (no DDP gradient sync for them).
    _set_requires_grad(nets.d_mod, False)
    _set_requires_grad(nets.df_mod, False)
    g_adv = gan_loss(nets.d_mod(torch.cat([x, fake], 1)), True, mode)
    if nets.df_mod is not None:
        g_adv = g_adv + gan_loss(nets.df_mod(fake), True, mode)
    # a pixel counts as much as its weight (0 where the head's region is not trusted)
    weight = paired.get("face_weight")
    l1 = masked_l1(out.face[:n_p], paired["face"],
                   paired["face_mask"] if weight is None else paired["face_mask"] * weight)
    bce = F.binary_cross_entropy_with_logits(out.mask_logit[:n_p], paired["face_mask"], weight=weight)
    la = torch.zeros((), device=x.device)
    groups = ([paired] if config.la_on_paired else []) + ([uskull] if uskull is not None else [])
    if groups and paired["la_px"].shape[1] > 0 and config.lambda2 > 0:
        rows = out.face if config.la_on_paired else out.face[n_p:]
        la = anthropological_loss(
            rows,
            torch.cat([g["la_px"] for g in groups]),
            torch.cat([g["la_height"] for g in groups]),
            torch.cat([g["la_valid"] for g in groups]),
            denormalise=denormalise,
        )
    total = g_adv + config.lambda1 * l1 + config.lambda2 * la + config.lambda_mask * bce
    nets.opt_g.zero_grad(set_to_none=True)
    total.backward()
    nets.opt_g.step()
    _set_requires_grad(nets.d_mod, True)
    _set_requires_grad(nets.df_mod, True)
    return {"d_cond": loss_d.detach(), "d_face": loss_df.detach(), "g_adv": g_adv.detach(),
            "l1": l1.detach(), "mask_bce": bce.detach(), "la_mm": la.detach(), "g_total": total.detach()}


__all__ = ["GanConfig", "Nets", "build_nets", "generator_kwargs", "train_step"]
