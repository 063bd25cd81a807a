"""Tests for tabresnet_course.augment (chapter "Contrastive learning")."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tabresnet_course.augment import MarginalResampling, TabularAugmentation
from tabresnet_course.model import MASK_INDEX, NUM_RESERVED_INDICES, PADDING_INDEX, UNKNOWN_INDEX

CARDINALITIES = [2, 5, 40]


def make_batch(batch: int = 64, num_numerical: int = 4, seed: int = 0, missing_rate: float = 0.1):
    """A batch with distinct numericals and categoricals that include missing/unknown cells."""
    g = torch.Generator().manual_seed(seed)
    numerical = torch.randn(batch, num_numerical, generator=g)  # (B, n_num), all values distinct
    codes = torch.stack([torch.randint(0, c, (batch,), generator=g) for c in CARDINALITIES], dim=1)  # (B, n_cat)
    categorical = codes + NUM_RESERVED_INDICES
    reserved = torch.rand(batch, len(CARDINALITIES), generator=g) < missing_rate
    reserved_value = torch.where(torch.rand(batch, len(CARDINALITIES), generator=g) < 0.5, PADDING_INDEX, UNKNOWN_INDEX)
    return numerical, torch.where(reserved, reserved_value, categorical)


def augmenters(seed: int, **protected):
    return [
        TabularAugmentation(noise_level=0.3, swap_prob=0.5, generator=torch.Generator().manual_seed(seed), **protected),
        MarginalResampling(corruption_rate=0.6, generator=torch.Generator().manual_seed(seed), **protected),
    ]


@pytest.mark.parametrize("index", [0, 1])
def test_shapes_dtypes_and_seeded_determinism(index: int) -> None:
    numerical, categorical = make_batch()
    first = augmenters(7)[index](numerical, categorical, CARDINALITIES)
    again = augmenters(7)[index](numerical, categorical, CARDINALITIES)
    other = augmenters(8)[index](numerical, categorical, CARDINALITIES)
    assert first[0].shape == numerical.shape and first[0].dtype == numerical.dtype
    assert first[1].shape == categorical.shape and first[1].dtype == categorical.dtype
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


@pytest.mark.parametrize("index", [0, 1])
def test_protected_columns_are_untouched(index: int) -> None:
    numerical, categorical = make_batch(batch=256)
    augmenter = augmenters(1, protected_numerical=(0, 3), protected_categorical=(1,))[index]
    new_numerical, new_categorical = augmenter(numerical, categorical, CARDINALITIES)
    assert torch.equal(new_numerical[:, [0, 3]], numerical[:, [0, 3]])
    assert torch.equal(new_categorical[:, 1], categorical[:, 1])
    assert not torch.equal(new_numerical[:, 1], numerical[:, 1])
    assert not torch.equal(new_categorical[:, 2], categorical[:, 2])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(2, 50), index=st.sampled_from([0, 1]))
def test_no_reserved_index_is_produced(seed: int, batch: int, index: int) -> None:
    numerical, categorical = make_batch(batch=batch, seed=seed, missing_rate=0.3)
    _, new_categorical = augmenters(seed)[index](numerical, categorical, CARDINALITIES)
    real = categorical >= NUM_RESERVED_INDICES
    assert (new_categorical[real] >= NUM_RESERVED_INDICES).all()
    assert torch.equal(new_categorical[~real], categorical[~real])  # missing/unknown stay as they are
    assert (new_categorical != MASK_INDEX).all()
    limits = torch.tensor(CARDINALITIES) + NUM_RESERVED_INDICES
    assert (new_categorical < limits).all()


def test_uniform_swap_rate_and_range() -> None:
    categorical = torch.full((20_000, 1), NUM_RESERVED_INDICES)
    augmenter = TabularAugmentation(swap_prob=0.2, generator=torch.Generator().manual_seed(0))
    swapped = augmenter.augment_categorical(categorical, [4])
    changed = (swapped != categorical).float().mean().item()
    assert changed == pytest.approx(0.2 * 3 / 4, abs=0.01)  # a swap redraws the same category 1/4 of the time
    assert set(swapped.unique().tolist()) == {3, 4, 5, 6}


def test_noise_scale_and_independent_views() -> None:
    numerical = torch.zeros(20_000, 2)
    augmenter = TabularAugmentation(noise_level=0.1, generator=torch.Generator().manual_seed(0))
    (num1, _), (num2, _) = augmenter.two_views(numerical, torch.zeros(20_000, 0, dtype=torch.long), [])
    assert num1.std().item() == pytest.approx(0.1, rel=0.05)
    assert not torch.equal(num1, num2)


def test_marginal_resampling_uses_values_present_in_the_column() -> None:
    numerical, categorical = make_batch(batch=128)
    new_numerical, new_categorical = MarginalResampling(generator=torch.Generator().manual_seed(3))(
        numerical, categorical
    )
    for column in range(numerical.shape[1]):
        assert torch.isin(new_numerical[:, column], numerical[:, column]).all()
    for column in range(categorical.shape[1]):
        assert torch.isin(new_categorical[:, column], categorical[:, column]).all()


@pytest.mark.parametrize("rate", [0.3, 0.6, 0.8])
def test_corruption_rate_matches_and_donor_is_another_row(rate: float) -> None:
    numerical = torch.randn(4_000, 10, generator=torch.Generator().manual_seed(0))  # distinct values
    categorical = torch.zeros(4_000, 0, dtype=torch.long)
    augmenter = MarginalResampling(corruption_rate=rate, generator=torch.Generator().manual_seed(1))
    mask = augmenter.corruption_mask(4_000, 10, 0, numerical.device)
    assert (mask.sum(1) == round(rate * 10)).all()  # the same number of features in every row
    assert mask.float().mean(0).sub(rate).abs().max().item() < 0.05  # every column equally likely
    corrupted, _ = augmenter(numerical, categorical)
    assert (corrupted != numerical).float().mean().item() == pytest.approx(rate, abs=1e-6)


def test_marginal_two_views_is_clean_anchor_plus_corrupted_view() -> None:
    numerical, categorical = make_batch()
    (clean_num, clean_cat), (num2, cat2) = MarginalResampling().two_views(numerical, categorical, CARDINALITIES)
    assert torch.equal(clean_num, numerical) and torch.equal(clean_cat, categorical)
    assert not torch.equal(num2, numerical)


def test_marginal_resampling_keeps_protected_count_out_of_the_rate() -> None:
    augmenter = MarginalResampling(corruption_rate=0.5, protected_numerical=(0, 1))
    mask = augmenter.corruption_mask(100, 4, 2, torch.device("cpu"))
    assert not mask[:, :2].any()
    assert (mask.sum(1) == 2).all()  # half of the 4 unprotected features


def test_bad_arguments_raise_value_error() -> None:
    numerical, categorical = make_batch()
    with pytest.raises(ValueError, match="protected column 9"):
        TabularAugmentation(protected_numerical=(9,))(numerical, categorical, CARDINALITIES)
    with pytest.raises(ValueError, match="cardinalities"):
        TabularAugmentation()(numerical, categorical, [3])
    with pytest.raises(ValueError, match="at least 2 rows"):
        MarginalResampling()(numerical[:1], categorical[:1])
    with pytest.raises(ValueError, match="corruption_rate"):
        MarginalResampling(corruption_rate=1.5)
    with pytest.raises(ValueError, match="number of rows"):
        MarginalResampling()(numerical, categorical[:3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("index", [0, 1])
def test_cpu_generator_with_cuda_batch(index: int) -> None:
    numerical, categorical = make_batch()
    cpu = augmenters(5)[index](numerical, categorical, CARDINALITIES)
    cuda = augmenters(5)[index](numerical.cuda(), categorical.cuda(), CARDINALITIES)
    assert cuda[0].is_cuda and cuda[1].is_cuda
    assert torch.allclose(cuda[0].cpu(), cpu[0]) and torch.equal(cuda[1].cpu(), cpu[1])
