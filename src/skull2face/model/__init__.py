"""The skull2face conditional GAN (Knyaz et al. 2020), in torch only.

This package knows tensors, not files, meshes or paths. Depth maps arrive as float32 tensors of
shape (B, 1, H, W) holding normalised heights in [0, 1] (see `skull2face.geometry.codec`:
head-frame height mapped to [0, 1] and raised to a power k, 4 by default; 0 is background /
far), each with a {0, 1} float validity mask of the same shape.

- `networks`: `UNetGenerator` (skull map + skull mask -> face map + face-mask logit, one set of
  weights for every power-of-two resolution from 8x8 to ``max_res``, with progressive-GAN
  fade-in), `PatchDiscriminator` (conditional or unconditional PatchGAN) and `init_weights`.
- `losses`: `gan_loss`, `masked_l1`, `anthropological_loss` (the paper's L_A on landmark
  points, differentiable through bilinear sampling) and `make_denormalise` for it.
- `cgan`: `GanConfig`, `build_nets` (networks and optimisers of a run), `generator_kwargs` and
  `train_step` (one discriminator and one generator update).

The (de)normalisation and the residual decode are `skull2face.geometry.codec`, written once for
numpy arrays and torch tensors alike.
"""

from .cgan import GanConfig, Nets, build_nets, generator_kwargs, train_step  # noqa: F401
from .losses import (  # noqa: F401
    anthropological_loss,
    gan_loss,
    make_denormalise,
    masked_l1,
)
from .networks import GeneratorOutput, PatchDiscriminator, UNetGenerator, init_weights  # noqa: F401
