"""Generator and discriminators of the skull2face GAN.

Tensors follow the package conventions (see `skull2face.model`): maps are float32
(B, C, H, W), normalised heights in [0, 1], masks in {0, 1}.

Generator: a U-Net grown like a progressive GAN
-----------------------------------------------
The paper trains in stages, starting at 8x8 and doubling the resolution while carrying the
weights over. A U-Net with a fixed number of levels cannot do that (an 8x8 input does not
survive six halvings). `UNetGenerator` therefore owns one *level* per power-of-two resolution
``r`` from ``max_res`` down to a 2x2 bottleneck, and every level always works at its own
resolution ``r``:

    x (R x R) -> from_rgb[R] -> down[R] -> ... -> down[8] -> down[4] -> bottleneck (2x2)
                   |skip         |skip             |skip      |skip          |
    out <- to_rgb[R] <- up[R] <- ...  <- up[8]   <- up[4]   <--------------+

For an R x R input only the levels ``r <= R`` run: the input enters through the 1x1 ``from_rgb``
layer of level R and leaves through the 1x1 ``to_rgb`` layer of level R, as in progressive
GANs (Karras et al. 2018). Growing from R/2 to R adds the outer level R (its ``down``, ``up``,
``from_rgb`` and ``to_rgb``) while every inner layer keeps its weights *and* keeps seeing
features at the scale it was trained on. ``forward(x, alpha)`` fades a newly added level in:
with ``alpha < 1`` the encoder input and the output are blended with the R/2 path fed by the
2x2 average-pooled input (output upsampled bilinearly), exactly the progressive-GAN recipe.

Each ``down`` is one 4x4 stride-2 convolution (pix2pix style); each ``up`` upsamples bilinearly
and applies one 3x3 convolution to ``concat(upsampled, skip)``. Resize-convolution instead of
transposed convolution avoids checkerboard artefacts, which would become ripples on the face
surface once the depth map is turned back into a mesh. Instance normalisation follows every
convolution whose output is at least 4x4 (never the 2x2 bottleneck, never ``from_rgb`` /
``to_rgb``); since a level's resolution never changes, neither does its normalisation.

Widths: level ``r`` has ``clamp(base * 256 / r, 8, max_ch)`` channels, i.e. ``base`` at 256x256,
doubling per halving up to ``max_ch`` and halving at 512. Widths therefore do not depend on
``max_res``, which only adds or removes outer levels.

Outputs: the face map (sigmoid, [0, 1]) and, by default, a face-mask logit. The face silhouette
is not the skull's (nose, ears, chin, cheeks extend past the bone), so the generator predicts
where the face is instead of borrowing the skull mask; train it with
``F.binary_cross_entropy_with_logits(mask_logit, face_mask)`` and threshold
``mask_logit > 0`` at inference.

Discriminator
-------------
`PatchDiscriminator` is a fully convolutional PatchGAN with spectral normalisation by default
(batch- and resolution-independent; instance normalisation would zero out the 1x1 feature maps
that an 8x8 input produces). Conditional use (paired data): input
``concat(skull map, skull mask, face map)``, ``in_ch=3``. Unconditional use (unpaired faces): a
second instance with ``in_ch=1`` fed the face map only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

_BOTTOM = 2  # resolution of the generator's bottleneck


def _is_pow2(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


class GeneratorOutput(NamedTuple):
    """What `UNetGenerator` returns.

    Attributes
    ----------
    face : torch.Tensor, shape (B, out_ch, H, W), float32 in [0, 1]
        Predicted normalised face heights (sigmoid output).
    mask_logit : torch.Tensor or None, shape (B, 1, H, W), float32
        Logit of "the face surface exists at this pixel"; ``None`` when the generator was built
        with ``predict_mask=False``.
    """

    face: torch.Tensor
    mask_logit: torch.Tensor | None

    def composite(self) -> torch.Tensor:
        """``face * sigmoid(mask_logit)`` (B, out_ch, H, W): the face with a soft background of 0.

        Real face maps are 0 off the face, so this is what a discriminator should be shown.
        Differentiable in both outputs; equals ``face`` when no mask is predicted.
        """
        if self.mask_logit is None:
            return self.face
        return self.face * torch.sigmoid(self.mask_logit)


class UNetGenerator(nn.Module):
    """Skull map (+ mask) -> face map (+ mask logit), one set of weights for all resolutions.

    See the module docstring for the architecture.

    Parameters
    ----------
    in_ch : int
        Input channels; 2 for ``concat(skull map, skull mask)``.
    out_ch : int
        Map channels produced (1: the face map). The mask logit comes on top of these.
    base : int
        Channels of the 256x256 level; level ``r`` has ``clamp(base * 256 / r, 8, max_ch)``.
    max_ch : int
        Channel cap of the coarse levels.
    max_res : int
        Largest input size handled (power of two, >= ``min_res``); one level per power of two.
    min_res : int
        Smallest input size handled, the first training stage (power of two, >= 4).
    predict_mask : bool
        Also output a face-mask logit.
    norm : {"instance", "none"}
        Normalisation after convolutions whose output is at least 4x4.
    dropout : float
        Dropout probability in the decoder levels at 8x8 and below (pix2pix's noise source);
        0 (default) makes the generator deterministic.
    """

    def __init__(
        self,
        in_ch: int = 2,
        out_ch: int = 1,
        base: int = 16,
        max_ch: int = 256,
        max_res: int = 512,
        min_res: int = 8,
        predict_mask: bool = True,
        norm: str = "instance",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not (_is_pow2(min_res) and _is_pow2(max_res) and 2 * _BOTTOM <= min_res <= max_res):
            raise ValueError(f"need powers of two 4 <= min_res <= max_res, got {min_res}, {max_res}")
        if norm not in ("instance", "none"):
            raise ValueError(f"norm must be 'instance' or 'none', got {norm!r}")
        self.in_ch, self.out_ch, self.predict_mask = in_ch, out_ch, predict_mask
        self.min_res, self.max_res = min_res, max_res
        n_out = out_ch + int(predict_mask)

        def width(r: int) -> int:
            return int(min(max_ch, max(8, base * 256 // r)))

        def norm_layer(ch: int, r_out: int) -> nn.Module:
            return nn.InstanceNorm2d(ch, affine=True) if norm == "instance" and r_out >= 4 else nn.Identity()

        self.widths = {r: width(r) for r in self._levels(max_res)}
        self.from_rgb = nn.ModuleDict()
        self.to_rgb = nn.ModuleDict()
        self.down = nn.ModuleDict()
        self.up = nn.ModuleDict()
        for r in self._levels(max_res):
            c, c_in = self.widths[r], width(r // 2)
            if r == _BOTTOM:
                self.bottleneck = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(True))
                continue
            if r >= min_res:
                self.from_rgb[str(r)] = nn.Sequential(nn.Conv2d(in_ch, c, 1), nn.LeakyReLU(0.2, True))
                self.to_rgb[str(r)] = nn.Conv2d(c, n_out, 1)
            self.down[str(r)] = nn.Sequential(
                nn.Conv2d(c, c_in, 4, stride=2, padding=1), norm_layer(c_in, r // 2), nn.LeakyReLU(0.2, True)
            )
            up = [nn.Conv2d(c_in + c, c, 3, padding=1), norm_layer(c, r), nn.ReLU(True)]
            if dropout > 0 and r <= 8:
                up.append(nn.Dropout(dropout))
            self.up[str(r)] = nn.Sequential(*up)

    @staticmethod
    def _levels(res: int) -> list[int]:
        """Resolutions of the levels active for a ``res`` x ``res`` input, outermost first."""
        return [2**i for i in range(int(math.log2(res)), int(math.log2(_BOTTOM)) - 1, -1)]

    def forward(self, x: torch.Tensor, alpha: float = 1.0) -> GeneratorOutput:
        """Translate skull maps to face maps.

        Parameters
        ----------
        x : torch.Tensor, shape (B, in_ch, R, R), float32
            ``concat(skull map, skull mask)``; R a power of two in [min_res, max_res].
        alpha : float in [0, 1]
            Fade-in weight of the outermost level R (progressive growing): 1 uses it fully,
            0 reproduces the R/2 network on the average-pooled input, upsampled bilinearly.
            Ignored when ``R == min_res``.

        Returns
        -------
        GeneratorOutput
            ``face`` (B, out_ch, R, R) in [0, 1] and ``mask_logit`` (B, 1, R, R) or None.
        """
        if x.dim() != 4 or x.shape[1] != self.in_ch:
            raise ValueError(f"expected (B, {self.in_ch}, R, R), got {tuple(x.shape)}")
        res = x.shape[-1]
        if x.shape[-2] != res or not _is_pow2(res) or not self.min_res <= res <= self.max_res:
            raise ValueError(
                f"input must be square with a power-of-two side in [{self.min_res}, {self.max_res}], "
                f"got {tuple(x.shape[-2:])}"
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        fade = alpha < 1.0 and res > self.min_res

        # Encoder: skips[r] is the feature map at level r (r x r).
        skips = {res: self.from_rgb[str(res)](x)}
        h = skips[res]
        for r in self._levels(res)[:-1]:
            h = self.down[str(r)](h)
            if r == res and fade:
                old = self.from_rgb[str(r // 2)](F.avg_pool2d(x, 2))
                h = torch.lerp(old, h, alpha)
            skips[r // 2] = h
        # Decoder.
        u = self.bottleneck(h)
        for r in reversed(self._levels(res)[:-1]):
            if r == res and fade:
                old_out = F.interpolate(self.to_rgb[str(r // 2)](u), scale_factor=2, mode="bilinear")
            up = F.interpolate(u, scale_factor=2, mode="bilinear")
            u = self.up[str(r)](torch.cat([up, skips[r]], dim=1))
        out = self.to_rgb[str(res)](u)
        if fade:
            out = torch.lerp(old_out, out, alpha)
        face = torch.sigmoid(out[:, : self.out_ch])
        return GeneratorOutput(face, out[:, self.out_ch :] if self.predict_mask else None)


class PatchDiscriminator(nn.Module):
    """PatchGAN: one real/fake logit per overlapping patch, for any input size >= 1.

    Layers: ``n_layers`` 4x4 stride-2 convolutions (``base``, ``2 base``, ... channels, capped at
    ``max_ch``), one 4x4 stride-1 convolution and a 4x4 stride-1 convolution to one channel,
    LeakyReLU(0.2) in between. With ``n_layers=3`` the receptive field is 70x70 pixels, so a
    256x256 input gets 32x32 patch logits. The stride-1 layers use 'same' padding, so a small
    input never collapses: an 8x8 input yields a single logit that sees the whole image (zero
    padding reads as background, which is what 0 means in the maps). A stride-2 layer whose
    input is already 1 pixel high or wide runs with stride 1 instead, so any ``n_layers`` works at
    any size. The same weights thus apply at every training stage.

    Parameters
    ----------
    in_ch : int
        3 for the conditional discriminator, fed ``concat(skull map, skull mask, face map)``;
        1 for the unconditional one, fed a face map only (unpaired faces).
    base : int
        Channels of the first layer.
    n_layers : int
        Number of stride-2 layers (3: 70x70 receptive field).
    max_ch : int
        Channel cap.
    norm : {"spectral", "instance", "none"}
        "spectral" (default): spectral normalisation of every weight, independent of batch
        size and resolution. "instance": instance normalisation after the inner convolutions,
        skipped on feature maps of a single pixel (where it would return zeros).
    """

    def __init__(
        self, in_ch: int, base: int = 32, n_layers: int = 3, max_ch: int = 256, norm: str = "spectral"
    ):
        super().__init__()
        if norm not in ("spectral", "instance", "none"):
            raise ValueError(f"norm must be 'spectral', 'instance' or 'none', got {norm!r}")
        self.in_ch, self.norm = in_ch, norm
        chans = [in_ch] + [min(max_ch, base * 2**i) for i in range(n_layers + 1)] + [1]
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(n_layers + 2):
            conv = nn.Conv2d(chans[i], chans[i + 1], 4)
            self.convs.append(spectral_norm(conv) if norm == "spectral" else conv)
            inner = 0 < i < n_layers + 1
            self.norms.append(
                nn.InstanceNorm2d(chans[i + 1], affine=True)
                if norm == "instance" and inner
                else nn.Identity()
            )
        self.n_layers = n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch logits.

        Parameters
        ----------
        x : torch.Tensor, shape (B, in_ch, H, W), float32

        Returns
        -------
        torch.Tensor, shape (B, 1, h, w), float32
            Raw logits (no sigmoid); ``h = max(1, H / 2**n_layers)`` for power-of-two sizes.
        """
        if x.dim() != 4 or x.shape[1] != self.in_ch:
            raise ValueError(f"expected (B, {self.in_ch}, H, W), got {tuple(x.shape)}")
        last = len(self.convs) - 1
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            if i < self.n_layers and min(x.shape[-2:]) > 1:
                x = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)
            else:
                x = F.conv2d(F.pad(x, (1, 2, 1, 2)), conv.weight, conv.bias)
            if i < last:
                if min(x.shape[-2:]) > 1:
                    x = norm(x)
                x = F.leaky_relu(x, 0.2)
        return x


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """Initialise in place as pix2pix does; returns ``net``.

    Convolution weights ~ N(0, gain), biases 0; affine normalisation weights ~ N(1, gain),
    biases 0. Spectrally normalised convolutions get their underlying (unnormalised) weight
    initialised, the spectral normalisation rescales it anyway.
    """
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                p = getattr(m, "parametrizations", None)
                w = p.weight.original if p is not None and hasattr(p, "weight") else m.weight
                nn.init.normal_(w, 0.0, gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                nn.init.normal_(m.weight, 1.0, gain)
                nn.init.zeros_(m.bias)
    return net
