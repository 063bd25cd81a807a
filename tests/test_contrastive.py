"""Tests for tabresnet_course.contrastive (chapter "Contrastive learning")."""

from __future__ import annotations

import math

import pytest
import torch

from tabresnet_course.augment import MarginalResampling, TabularAugmentation
from tabresnet_course.contrastive import contrastive_loss, nt_xent_loss
from tabresnet_course.mfp import TabularResNetWithMFP
from tabresnet_course.model import NUM_RESERVED_INDICES, TabularResNet

CARDINALITIES = [3, 7]


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """NT-Xent written as a plain double loop over the 2N views, in float64."""
    views = [v / v.norm() for v in torch.cat([z1, z2]).double()]
    n = z1.shape[0]
    total = 0.0
    for i, anchor in enumerate(views):
        partner = (i + n) % (2 * n)
        denominator = sum(math.exp(float(anchor @ other) / temperature) for k, other in enumerate(views) if k != i)
        total += -float(anchor @ views[partner]) / temperature + math.log(denominator)
    return total / (2 * n)


def make_batch(batch: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    numerical = torch.randn(batch, 5, generator=g)
    codes = torch.stack([torch.randint(0, c, (batch,), generator=g) for c in CARDINALITIES], dim=1)
    return numerical, codes + NUM_RESERVED_INDICES


@pytest.mark.parametrize(("n", "d", "temperature"), [(2, 3, 1.0), (5, 8, 0.5), (17, 4, 0.1), (9, 16, 2.0)])
def test_matches_loop_reference(n: int, d: int, temperature: float) -> None:
    g = torch.Generator().manual_seed(n * d)
    z1, z2 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    loss = nt_xent_loss(z1, z2, temperature)
    assert loss.item() == pytest.approx(reference_nt_xent(z1, z2, temperature), rel=1e-5)


def test_invariant_to_permuting_the_batch() -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(12, 6, generator=g), torch.randn(12, 6, generator=g)
    order = torch.randperm(12, generator=g)
    assert nt_xent_loss(z1[order], z2[order], 0.5).item() == pytest.approx(nt_xent_loss(z1, z2, 0.5).item(), rel=1e-6)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_identical_orthogonal_views_reach_the_analytic_value(temperature: float) -> None:
    n = 8
    z = torch.eye(n) * 3.0  # orthogonal records, scaled to check the normalisation
    expected = math.log1p((2 * n - 2) * math.exp(-1.0 / temperature))
    loss = nt_xent_loss(z, z.clone(), temperature).item()
    assert loss == pytest.approx(expected, rel=1e-4, abs=1e-5)
    random_loss = nt_xent_loss(torch.randn(n, n), torch.randn(n, n), temperature).item()
    assert loss < random_loss


def test_finite_under_bfloat16_autocast_and_close_to_float32() -> None:
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(64, 32, generator=g), torch.randn(64, 32, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = nt_xent_loss(z1.bfloat16(), z2.bfloat16(), 0.05)
    assert low.dtype == torch.float32 and torch.isfinite(low)
    assert low.item() == pytest.approx(nt_xent_loss(z1, z2, 0.05).item(), rel=0.02)


def test_model_loss_under_autocast_is_finite() -> None:
    torch.manual_seed(0)
    model = TabularResNet(5, CARDINALITIES, d_model=32, num_blocks=2)
    numerical, categorical = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = contrastive_loss(model, numerical, categorical, CARDINALITIES, temperature=0.1)
    loss.backward()
    assert torch.isfinite(loss)


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        nt_xent_loss(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="shape"):
        nt_xent_loss(torch.randn(4), torch.randn(4))
    with pytest.raises(ValueError, match="at least 2"):
        nt_xent_loss(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent_loss(torch.randn(4, 3), torch.randn(4, 3), temperature=0.0)


class CountingModel(torch.nn.Module):
    """Wraps a model and records the batch size of every forward call."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.batch_sizes: list[int] = []

    def forward(self, numerical, categorical, return_embedding=False):
        self.batch_sizes.append(numerical.shape[0])
        return self.model(numerical, categorical, return_embedding=return_embedding)


@pytest.mark.parametrize("augmenter", [None, TabularAugmentation()])
def test_contrastive_loss_makes_one_forward_pass_of_both_views(augmenter) -> None:
    torch.manual_seed(0)
    model = CountingModel(TabularResNet(5, CARDINALITIES, d_model=32, num_blocks=2))
    numerical, categorical = make_batch(batch=16)
    loss = contrastive_loss(model, numerical, categorical, CARDINALITIES, augmenter=augmenter)
    loss.backward()
    assert model.batch_sizes == [32]
    assert all(p.grad is not None for p in model.parameters())


def test_batched_pass_equals_separate_passes_with_layernorm() -> None:
    torch.manual_seed(0)
    model = TabularResNet(5, CARDINALITIES, d_model=32, num_blocks=2).eval()
    numerical, categorical = make_batch(batch=16)
    loss = contrastive_loss(
        model,
        numerical,
        categorical,
        CARDINALITIES,
        0.5,
        MarginalResampling(generator=torch.Generator().manual_seed(4)),
    )
    (n1, c1), (n2, c2) = MarginalResampling(generator=torch.Generator().manual_seed(4)).two_views(
        numerical, categorical
    )
    separate = nt_xent_loss(model(n1, c1, return_embedding=True), model(n2, c2, return_embedding=True), 0.5)
    assert loss.item() == pytest.approx(separate.item(), rel=1e-5)


def test_contrastive_loss_works_on_the_mfp_wrapper() -> None:
    torch.manual_seed(0)
    base = TabularResNet(5, CARDINALITIES, d_model=32, num_blocks=1)
    wrapper = TabularResNetWithMFP(base, CARDINALITIES, 5)
    numerical, categorical = make_batch()
    assert torch.isfinite(contrastive_loss(wrapper, numerical, categorical, CARDINALITIES))
