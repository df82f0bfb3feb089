"""Known-answer tests for the skull2face networks and losses (CPU, a few seconds each)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from skull2face.model import (
    GeneratorOutput,
    PatchDiscriminator,
    UNetGenerator,
    anthropological_loss,
    gan_loss,
    init_weights,
    make_denormalise,
    masked_l1,
)
from skull2face.geometry.codec import rescale_px

STAGES = (8, 16, 32, 64, 128, 256, 512)


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def generator():
    return init_weights(UNetGenerator())


def blobs(n: int, size: int, seed: int = 0):
    """Smooth synthetic pairs: a skull ellipse carrying bumps; the face is the same surface
    raised by 0.1 on a larger ellipse. Returns skull, skull mask, face, face mask, (n, 1, S, S)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    out = [[], [], [], []]
    for _ in range(n):
        c = (torch.rand(2, generator=g) - 0.5) * 0.3
        ax = 0.45 + 0.25 * torch.rand(2, generator=g)
        height = torch.zeros(size, size)
        for _ in range(3):
            m = (torch.rand(2, generator=g) - 0.5) * 0.8
            s = 0.2 + 0.3 * torch.rand(1, generator=g)
            height += 0.2 * torch.exp(-((xx - m[0]) ** 2 + (yy - m[1]) ** 2) / (2 * s**2))
        rho = ((xx - c[0]) / ax[0]) ** 2 + ((yy - c[1]) / ax[1]) ** 2
        skull_mask, face_mask = (rho <= 1).float(), (rho <= 1.25).float()
        for lst, t in zip(
            out, (skull_mask * (0.2 + height), skull_mask, face_mask * (0.3 + height), face_mask)
        ):
            lst.append(t)
    return tuple(torch.stack(t)[:, None] for t in out)


# ---------------------------------------------------------------- networks


def test_generator_every_stage_one_instance(generator):
    for size in STAGES:
        b = 1 if size >= 256 else 2
        with torch.no_grad():
            out = generator(torch.rand(b, 2, size, size))
        assert isinstance(out, GeneratorOutput)
        assert out.face.shape == (b, 1, size, size) and out.face.dtype == torch.float32
        assert out.mask_logit.shape == (b, 1, size, size)
        assert out.face.min() >= 0 and out.face.max() <= 1
        assert out.composite().shape == (b, 1, size, size)


def test_generator_uses_inner_levels_at_every_stage(generator):
    """Growing keeps the inner weights in use: the 2x2 bottleneck gets gradient at every size."""
    for size in (8, 64):
        generator.zero_grad()
        generator(torch.rand(1, 2, size, size)).face.mean().backward()
        assert generator.bottleneck[0].weight.grad.abs().sum() > 0
        assert generator.from_rgb[str(size)][0].weight.grad.abs().sum() > 0
        unused = generator.from_rgb[str(2 * size)][0].weight.grad
        assert unused is None or unused.abs().sum() == 0


def test_generator_fade_in_blends_with_previous_stage():
    g = init_weights(UNetGenerator(base=4, max_ch=32, max_res=64)).eval()
    x = torch.rand(2, 2, 32, 32)
    with torch.no_grad():
        half = g(F.avg_pool2d(x, 2))
        old = g(x, alpha=0.0)
        new = g(x, alpha=1.0)
        mid = g(x, alpha=0.5)
        first = g(x[..., :8, :8], alpha=0.0)  # nothing to fade from at min_res: alpha is ignored
    up = lambda t: F.interpolate(t, scale_factor=2, mode="bilinear")
    torch.testing.assert_close(old.face, torch.sigmoid(up(torch.logit(half.face))), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(old.mask_logit, up(half.mask_logit), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(new.face, old.face)
    assert not torch.allclose(mid.face, old.face) and not torch.allclose(mid.face, new.face)
    with torch.no_grad():
        torch.testing.assert_close(first.face, g(x[..., :8, :8]).face)


def test_generator_without_mask_and_bad_inputs():
    g = UNetGenerator(base=4, max_ch=16, max_res=32, predict_mask=False)
    out = g(torch.rand(1, 2, 16, 16))
    assert out.mask_logit is None and out.composite() is out.face
    for shape in [(1, 2, 4, 4), (1, 2, 64, 64), (1, 2, 24, 24), (1, 2, 16, 32), (1, 3, 16, 16)]:
        with pytest.raises(ValueError):
            g(torch.rand(*shape))
    with pytest.raises(ValueError):
        g(torch.rand(1, 2, 16, 16), alpha=1.5)
    with pytest.raises(ValueError):
        UNetGenerator(min_res=12)


@pytest.mark.parametrize("in_ch", [3, 1])
def test_discriminator_every_stage_one_instance(in_ch):
    d = init_weights(PatchDiscriminator(in_ch))
    for size in STAGES:
        b = 1 if size >= 256 else 2
        with torch.no_grad():
            logits = d(torch.rand(b, in_ch, size, size))
        assert logits.shape == (b, 1, max(1, size // 8), max(1, size // 8))
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_discriminator_variants_small_inputs(norm):
    d = PatchDiscriminator(3, base=8, n_layers=5, norm=norm)
    for size in (8, 16, 64):
        assert d(torch.rand(2, 3, size, size)).shape == (2, 1, max(1, size // 32), max(1, size // 32))
    # At 8x8 the logit still depends on the input (instance norm is skipped on 1x1 maps).
    a, b = d(torch.rand(1, 3, 8, 8)), d(torch.rand(1, 3, 8, 8))
    assert not torch.allclose(a, b)


def test_discriminator_receptive_field_is_70():
    d = init_weights(PatchDiscriminator(1))
    x = torch.rand(1, 1, 256, 256, requires_grad=True)
    d(x)[0, 0, 16, 16].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    cols = torch.nonzero(x.grad[0, 0].abs().sum(0)).flatten()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_init_weights():
    d = init_weights(PatchDiscriminator(3), gain=0.02)
    w = d.convs[1].parametrizations.weight.original
    assert abs(w.std().item() - 0.02) < 0.002 and d.convs[1].bias.abs().max() == 0
    g = init_weights(UNetGenerator(base=4, max_ch=32, max_res=32), gain=0.02)
    assert abs(g.down["32"][0].weight.std().item() - 0.02) < 0.004


def test_generator_overfits_four_pairs():
    """Default widths, 32x32: 150 Adam steps (~15 s on 2 cores) reach masked L1 < 0.02
    (observed 0.0007) and a face mask with < 2 % wrong pixels."""
    skull, skull_mask, face, face_mask = blobs(4, 32)
    g = init_weights(UNetGenerator())
    opt = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 150)
    x = torch.cat([skull, skull_mask], 1)
    with torch.no_grad():
        start = masked_l1(g(x).face, face, face_mask).item()
    for _ in range(150):
        out = g(x)
        loss = masked_l1(out.face, face, face_mask)
        loss = loss + 0.1 * F.binary_cross_entropy_with_logits(out.mask_logit, face_mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        out = g(x)
    l1 = masked_l1(out.face, face, face_mask).item()
    assert start > 0.05 and l1 < 0.02, (start, l1)
    assert ((out.mask_logit > 0).float() != face_mask).float().mean() < 0.02


# ---------------------------------------------------------------- losses


def test_gan_loss_known_values():
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert gan_loss(ones, True).item() == 0.0
    assert gan_loss(zeros, False).item() == 0.0
    assert gan_loss(zeros, True).item() == pytest.approx(1.0)
    assert gan_loss(torch.full((3,), 0.5), False).item() == pytest.approx(0.25)
    assert gan_loss(zeros, True, "vanilla").item() == pytest.approx(math.log(2))
    assert gan_loss(zeros, False, "vanilla").item() == pytest.approx(math.log(2))
    assert gan_loss(torch.full((3,), 30.0), True, "vanilla").item() < 1e-12
    assert gan_loss(torch.full((3,), 30.0), False, "vanilla").item() == pytest.approx(30.0)
    with pytest.raises(ValueError):
        gan_loss(ones, True, "hinge")


def test_masked_l1_ignores_masked_pixels():
    target = torch.rand(2, 1, 8, 8)
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    pred = torch.where(mask > 0, target, target + 5.0)
    assert masked_l1(pred, target, mask).item() == 0.0
    pred = pred + 0.25 * mask
    assert masked_l1(pred, target, mask).item() == pytest.approx(0.25)
    # mean over valid pixels pooled over the batch
    pred, target = torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    pred[0, 0, 0, 0], pred[1, 0, 1, 1] = 1.0, 3.0
    mask = torch.zeros(2, 1, 2, 2)
    mask[0, 0, 0, :], mask[1, 0, 1, 1] = 1.0, 1.0
    assert masked_l1(pred, target, mask).item() == pytest.approx(4.0 / 3.0)


def test_masked_l1_empty_mask_is_zero_and_differentiable():
    pred = torch.rand(1, 1, 4, 4, requires_grad=True)
    loss = masked_l1(pred, torch.rand(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(pred.grad == 0)


def _bilinear(m: torch.Tensor, r: float, c: float) -> float:
    r0, c0 = math.floor(r), math.floor(c)
    fr, fc = r - r0, c - c0
    r1, c1 = min(r0 + 1, m.shape[0] - 1), min(c0 + 1, m.shape[1] - 1)
    return float(
        (1 - fr) * (1 - fc) * m[r0, c0]
        + (1 - fr) * fc * m[r0, c1]
        + fr * (1 - fc) * m[r1, c0]
        + fr * fc * m[r1, c1]
    )


def test_anthropological_loss_samples_bilinearly_in_row_col_order():
    h, w = 8, 12  # not square, so a (row, col) / (x, y) mix-up cannot pass
    face = torch.rand(1, 1, h, w)
    pts = [(2.3, 4.7), (0.0, 0.0), (7.0, 11.0), (5.5, 0.25), (6.9, 10.1)]
    expected = torch.tensor([[_bilinear(face[0, 0], r, c) for r, c in pts]])
    px, valid = torch.tensor([pts]), torch.ones(1, len(pts))
    assert anthropological_loss(face, px, expected, valid).item() == pytest.approx(0.0, abs=1e-7)
    assert anthropological_loss(face, px, expected, valid, norm="l2").item() == pytest.approx(0.0, abs=1e-12)
    assert expected[0, 1] == face[0, 0, 0, 0] and expected[0, 2] == face[0, 0, 7, 11]
    assert anthropological_loss(face, px, expected + 0.1, valid).item() == pytest.approx(0.1, abs=1e-6)
    assert anthropological_loss(face, px, expected + 0.1, valid, norm="l2").item() == pytest.approx(
        0.01, abs=1e-6
    )
    swapped = px.flip(-1)[:, :1] * torch.tensor([1.0, 0.5])  # (4.7, 1.15): inside, another value
    assert anthropological_loss(face, swapped, expected[:, :1], valid[:, :1]).item() > 1e-3


def test_anthropological_loss_validity_and_batch_mean():
    face = torch.zeros(2, 1, 8, 8)
    face[1] = 1.0
    px = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [20.0, 3.0]], [[3.0, 3.0], [-1.0, 2.0], [4.0, 4.0]]])
    target = torch.tensor([[0.5, float("nan"), 0.0], [0.5, 0.0, 0.75]])
    valid = torch.tensor([[1, 0, 1], [1, 1, 1]])  # NaN landmark flagged invalid, two outside the map
    loss = anthropological_loss(face, px, target, valid)
    assert loss.item() == pytest.approx((0.5 + 0.5 + 0.25) / 3)
    empty = anthropological_loss(face.requires_grad_(), px, target, torch.zeros(2, 3))
    assert empty.item() == 0.0
    empty.backward()
    assert torch.all(face.grad == 0)


def test_anthropological_loss_in_mm():
    denorm = make_denormalise(-150.0, 50.0, k=4.0)
    assert denorm(torch.tensor(1.0)).item() == pytest.approx(50.0)
    assert denorm(torch.tensor(0.5**4)).item() == pytest.approx(-50.0, abs=1e-4)
    face = torch.full((1, 1, 8, 8), 0.3)
    px, valid = torch.tensor([[[3.5, 3.5], [1.0, 6.0]]]), torch.ones(1, 2)
    target = torch.tensor([[0.301, 0.0101]])
    mm = anthropological_loss(face, px, target, valid, denormalise=denorm)
    expected = (denorm(torch.tensor(0.301)) - denorm(torch.tensor(0.3))).abs()
    expected = (expected + (denorm(torch.tensor(0.3)) - denorm(torch.tensor(0.0101))).abs()) / 2
    assert mm.item() == pytest.approx(expected.item(), rel=1e-4)
    # the same normalised error costs far more mm deep in the map than at its front
    front = anthropological_loss(face, px[:, :1], torch.tensor([[0.301]]), valid[:, :1], denormalise=denorm)
    back = anthropological_loss(
        torch.full((1, 1, 8, 8), 0.01), px[:, :1], torch.tensor([[0.011]]), valid[:, :1], denormalise=denorm
    )
    assert back.item() > 10 * front.item()


def test_anthropological_loss_decreases_under_adam():
    face = torch.full((2, 1, 16, 16), 0.5, requires_grad=True)
    g = torch.Generator().manual_seed(1)
    px = torch.rand(2, 6, 2, generator=g) * 15
    target = 0.1 + 0.8 * torch.rand(2, 6, generator=g)
    valid = torch.ones(2, 6)
    opt = torch.optim.Adam([face], lr=0.05)
    losses = []
    for _ in range(30):
        loss = anthropological_loss(face, px, target, valid)
        opt.zero_grad()
        loss.backward()
        losses.append(loss.item())
        opt.step()
    assert losses[-1] < 0.3 * losses[0]
    # only the pixels around landmarks receive gradient
    loss = anthropological_loss(face, px, target, valid)
    face.grad = None
    loss.backward()
    assert (face.grad != 0).sum() <= 2 * 6 * 4


def test_rescale_px_matches_average_pooling():
    big = torch.zeros(1, 1, 32, 32)
    big[0, 0, 12:16, 20:24] = 1.0  # one 8x8 pixel after 4x pooling: row 3, col 5
    small = F.avg_pool2d(big, 4)
    centre_big = torch.tensor([13.5, 21.5])
    assert torch.allclose(rescale_px(centre_big, 32, 8), torch.tensor([3.0, 5.0]))
    assert small[0, 0, 3, 5] == 1.0
    assert torch.allclose(rescale_px(rescale_px(centre_big, 32, 8), 8, 32), centre_big)
