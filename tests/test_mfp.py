"""Tests for tabresnet_course.mfp (chapter "Masked feature prediction")."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from tabresnet_course.mfp import (
    TabularResNetWithMFP,
    mask_features,
    masked_feature_prediction_loss,
    reconstruction_report,
)
from tabresnet_course.model import MASK_INDEX, NUM_RESERVED_INDICES, PADDING_INDEX, TabularResNet

CARDINALITIES = [2, 6, 4]
NUM_NUMERICAL = 3


def make_model(num_numerical: int = NUM_NUMERICAL, cardinalities: list[int] = CARDINALITIES) -> TabularResNetWithMFP:
    torch.manual_seed(0)
    base = TabularResNet(num_numerical, cardinalities, d_model=32, num_blocks=2, dropout=0.0)
    return TabularResNetWithMFP(base, cardinalities, num_numerical)


def make_batch(
    batch: int = 40,
    num_numerical: int = NUM_NUMERICAL,
    cardinalities: list[int] = CARDINALITIES,
    seed: int = 0,
):
    g = torch.Generator().manual_seed(seed)
    numerical = torch.randn(batch, num_numerical, generator=g)
    codes = [torch.randint(0, c, (batch,), generator=g) for c in cardinalities]
    categorical = torch.stack(codes, dim=1) + NUM_RESERVED_INDICES if codes else torch.zeros(batch, 0, dtype=torch.long)
    return numerical, categorical


def test_mask_features_shapes_rate_and_seeded_determinism() -> None:
    numerical, categorical = make_batch(batch=5_000)
    num_mask, cat_mask = mask_features(numerical, categorical, 0.3, torch.Generator().manual_seed(1))
    again = mask_features(numerical, categorical, 0.3, torch.Generator().manual_seed(1))
    assert num_mask.shape == numerical.shape and cat_mask.shape == categorical.shape
    assert num_mask.dtype == torch.bool and cat_mask.dtype == torch.bool
    assert torch.equal(num_mask, again[0]) and torch.equal(cat_mask, again[1])
    assert torch.cat([num_mask, cat_mask], 1).float().mean().item() == pytest.approx(0.3, abs=0.01)


def test_masked_categorical_is_the_mask_index_and_numerical_the_learned_value() -> None:
    model = make_model()
    with torch.no_grad():
        model.numerical_mask_value.copy_(torch.tensor([7.0, 8.0, 9.0]))
    numerical, categorical = make_batch()
    num_mask, cat_mask = mask_features(numerical, categorical, 0.5, torch.Generator().manual_seed(0))
    masked_num, masked_cat = model.mask_inputs(numerical, categorical, num_mask, cat_mask)
    assert (masked_cat[cat_mask] == MASK_INDEX).all()
    assert (masked_cat[cat_mask] < NUM_RESERVED_INDICES).all()  # never a real category
    assert torch.equal(masked_cat[~cat_mask], categorical[~cat_mask])
    assert torch.equal(masked_num, torch.where(num_mask, torch.tensor([7.0, 8.0, 9.0]), numerical))


def test_logits_layout_masks_impossible_classes() -> None:
    model = make_model()
    numerical, categorical = make_batch(batch=8)
    logits, predictions = model(numerical, categorical)
    assert logits.shape == (8, 3, max(CARDINALITIES) + NUM_RESERVED_INDICES)
    assert predictions.shape == (8, NUM_NUMERICAL)
    probabilities = logits.softmax(-1)
    assert (probabilities[..., MASK_INDEX] == 0).all()
    assert (probabilities[:, 0, 2 + NUM_RESERVED_INDICES :] == 0).all()  # column 0 has 2 + 3 indices
    assert (probabilities[:, 1, PADDING_INDEX] > 0).all()  # "missing" can be predicted
    assert model(numerical, categorical, return_embedding=True).shape == (8, 32)
    assert torch.equal(model.embed(numerical, categorical), model.base_model.embed(numerical, categorical))


def reference_loss(model, numerical, categorical, num_mask, cat_mask, numerical_weight):
    """The MFP loss written with boolean indexing, as a check of the vectorised version."""
    logits, predictions = model(*model.mask_inputs(numerical, categorical, num_mask, cat_mask))
    categorical_loss = F.cross_entropy(logits[cat_mask], categorical[cat_mask])
    numerical_loss = F.mse_loss(predictions[num_mask], numerical[num_mask])
    return categorical_loss + numerical_weight * numerical_loss


def test_loss_matches_reference() -> None:
    model = make_model()
    numerical, categorical = make_batch()
    loss = masked_feature_prediction_loss(model, numerical, categorical, 0.3, 0.5, torch.Generator().manual_seed(2))
    num_mask, cat_mask = mask_features(numerical, categorical, 0.3, torch.Generator().manual_seed(2))
    expected = reference_loss(model, numerical, categorical, num_mask, cat_mask, 0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


class PerturbedOutputs(TabularResNetWithMFP):
    """Adds large changes to the predictions at the given (unmasked) cells."""

    keep_num: torch.Tensor
    keep_cat: torch.Tensor

    def forward(self, numerical, categorical, return_embedding=False):
        logits, predictions = super().forward(numerical, categorical)
        noise = 1e3 * torch.randn_like(logits)
        logits = logits + torch.where(self.keep_cat.unsqueeze(-1), 0.0, noise)
        predictions = predictions + torch.where(self.keep_num, 0.0, 1e3 * torch.randn_like(predictions))
        return logits, predictions


def test_loss_ignores_predictions_at_unmasked_cells() -> None:
    model = make_model()
    numerical, categorical = make_batch()
    baseline = masked_feature_prediction_loss(
        model, numerical, categorical, 0.3, generator=torch.Generator().manual_seed(5)
    )
    num_mask, cat_mask = mask_features(numerical, categorical, 0.3, torch.Generator().manual_seed(5))
    perturbed = PerturbedOutputs(model.base_model, CARDINALITIES, NUM_NUMERICAL)
    perturbed.load_state_dict(model.state_dict())
    perturbed.keep_num, perturbed.keep_cat = num_mask, cat_mask
    loss = masked_feature_prediction_loss(
        perturbed, numerical, categorical, 0.3, generator=torch.Generator().manual_seed(5)
    )
    assert loss.item() == pytest.approx(baseline.item(), rel=1e-6)
    perturbed.keep_num, perturbed.keep_cat = ~num_mask, ~cat_mask  # now perturb the masked cells
    changed = masked_feature_prediction_loss(
        perturbed, numerical, categorical, 0.3, generator=torch.Generator().manual_seed(5)
    )
    assert changed.item() > 10 * baseline.item()


@pytest.mark.parametrize(("num_numerical", "cardinalities"), [(3, [2, 6, 4]), (0, [5]), (4, [])])
def test_nothing_masked_gives_zero_loss_that_keeps_the_graph(num_numerical: int, cardinalities: list[int]) -> None:
    model = make_model(num_numerical, cardinalities)
    numerical, categorical = make_batch(num_numerical=num_numerical, cardinalities=cardinalities)
    loss = masked_feature_prediction_loss(model, numerical, categorical, mask_prob=0.0)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(("num_numerical", "cardinalities"), [(0, [5, 2]), (4, [])])
def test_one_kind_of_feature_only(num_numerical: int, cardinalities: list[int]) -> None:
    model = make_model(num_numerical, cardinalities)
    numerical, categorical = make_batch(num_numerical=num_numerical, cardinalities=cardinalities)
    loss = masked_feature_prediction_loss(
        model, numerical, categorical, 0.5, generator=torch.Generator().manual_seed(0)
    )
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    report = reconstruction_report(model, numerical, categorical, 0.5, torch.Generator().manual_seed(0))
    assert len(report) == num_numerical + len(cardinalities)


def test_learned_mask_value_receives_gradient() -> None:
    model = make_model()
    numerical, categorical = make_batch()
    masked_feature_prediction_loss(
        model, numerical, categorical, 0.5, generator=torch.Generator().manual_seed(0)
    ).backward()
    assert model.numerical_mask_value.grad is not None and model.numerical_mask_value.grad.abs().sum() > 0


def test_finite_under_bfloat16_autocast() -> None:
    model = make_model()
    numerical, categorical = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = masked_feature_prediction_loss(
            model, numerical, categorical, 0.3, generator=torch.Generator().manual_seed(0)
        )
    loss.backward()
    assert torch.isfinite(loss)


def test_rebuild_from_json_config_and_state_dict() -> None:
    model = make_model()
    config = json.loads(json.dumps(model.config.to_dict()))
    rebuilt = TabularResNetWithMFP.from_base_config(config)
    rebuilt.load_state_dict(model.state_dict())
    numerical, categorical = make_batch()
    model.eval()
    rebuilt.eval()
    for a, b in zip(model(numerical, categorical), rebuilt(numerical, categorical), strict=True):
        assert torch.equal(a, b)


def test_bad_inputs_raise_value_error() -> None:
    base = TabularResNet(NUM_NUMERICAL, CARDINALITIES, d_model=16, num_blocks=1)
    with pytest.raises(ValueError, match="categorical_cardinalities"):
        TabularResNetWithMFP(base, [2, 6], NUM_NUMERICAL)
    with pytest.raises(ValueError, match="num_numerical"):
        TabularResNetWithMFP(base, CARDINALITIES, 2)
    model = make_model()
    numerical, categorical = make_batch()
    categorical[0, 0] = MASK_INDEX
    with pytest.raises(ValueError, match="MASK_INDEX"):
        masked_feature_prediction_loss(model, numerical, categorical)
    with pytest.raises(ValueError, match="mask_prob"):
        mask_features(numerical, categorical, 1.5)


def test_reconstruction_report_scores_and_baselines() -> None:
    model = make_model()
    numerical, categorical = make_batch(batch=200)
    report = reconstruction_report(
        model, numerical, categorical, 0.5, torch.Generator().manual_seed(0), ["a", "b", "c"], ["x", "y", "z"]
    )
    assert report["feature"].tolist() == ["x", "y", "z", "a", "b", "c"]
    assert report["metric"].tolist() == ["accuracy"] * 3 + ["mse"] * 3
    num_mask, cat_mask = mask_features(numerical, categorical, 0.5, torch.Generator().manual_seed(0))
    assert report["masked_cells"].tolist() == cat_mask.sum(0).tolist() + num_mask.sum(0).tolist()
    majority = torch.mode(categorical[:, 1]).values
    expected = (categorical[:, 1][cat_mask[:, 1]] == majority).float().mean().item()
    assert report.loc[1, "baseline"] == pytest.approx(expected)
    assert report["model"].between(0, 1).iloc[:3].all() and (report["model"].iloc[3:] >= 0).all()
    assert model.training  # the report restores the training mode


def test_field_heads_are_the_rows_forward_reads_for_each_field():
    model = make_model().eval()
    numerical, categorical = make_batch(8)
    heads = model.field_heads()
    assert heads.categorical_weight.shape == (len(CARDINALITIES), max(CARDINALITIES) + NUM_RESERVED_INDICES, 32)
    assert heads.numerical_weight.shape == (NUM_NUMERICAL, 32)
    with torch.no_grad():
        logits, predictions = model(numerical, categorical)
        embedding = model.embed(numerical, categorical)  # (B, d)
        from_heads = torch.einsum("bd,ctd->bct", embedding, heads.categorical_weight) + heads.categorical_bias
        from_heads = from_heads.masked_fill(~heads.valid_classes, torch.finfo(from_heads.dtype).min)
    torch.testing.assert_close(from_heads, logits)
    torch.testing.assert_close(embedding @ heads.numerical_weight.T + heads.numerical_bias, predictions)
