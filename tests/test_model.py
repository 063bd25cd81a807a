"""Tests for tabresnet_course.model (chapter "The TabularResNet model")."""

import numpy as np
import pytest
import torch

from tabresnet_course import NUM_RESERVED_INDICES, TabularResNet, TabularResNetConfig
from tabresnet_course.model import encode_category_codes

CARDINALITIES = [5, 3, 11]


def make_batch(batch_size: int = 8, num_numerical: int = 4, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    numerical = torch.randn(batch_size, num_numerical, generator=generator)
    codes = torch.stack([torch.randint(0, c, (batch_size,), generator=generator) for c in CARDINALITIES], dim=1)
    return numerical, encode_category_codes(codes)


@pytest.mark.parametrize("normalization", ["layernorm", "batchnorm"])
def test_embedding_and_classification_shapes(normalization):
    numerical, categorical = make_batch()
    encoder = TabularResNet(4, CARDINALITIES, d_model=32, num_blocks=2, normalization=normalization)
    assert encoder(numerical, categorical).shape == (8, 32)
    assert encoder.d_model == 32
    classifier = TabularResNet(4, CARDINALITIES, d_model=32, num_blocks=2, num_classes=5)
    assert classifier(numerical, categorical).shape == (8, 5)
    assert classifier(numerical, categorical, return_embedding=True).shape == (8, 32)


def test_gradients_reach_every_parameter():
    numerical, categorical = make_batch()
    model = TabularResNet(4, CARDINALITIES, d_model=16, num_blocks=2, num_classes=3)
    model(numerical, categorical).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # Only embedding rows that were looked up get a gradient, but the matrix as a whole must.
    assert missing == []


def test_seeded_construction_and_forward_are_deterministic():
    numerical, categorical = make_batch()
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = TabularResNet(4, CARDINALITIES, d_model=16, num_blocks=2).train()
        torch.manual_seed(7)  # dropout draws
        outputs.append(model(numerical, categorical))
    assert torch.equal(outputs[0], outputs[1])


def test_zero_numerical_and_zero_categorical_features():
    only_cat = TabularResNet(0, [4, 2], d_model=8, num_blocks=1)
    out = only_cat(torch.empty(3, 0), encode_category_codes(torch.zeros(3, 2, dtype=torch.long)))
    assert out.shape == (3, 8)
    only_num = TabularResNet(2, [], d_model=8, num_blocks=1)
    assert only_num(torch.randn(3, 2)).shape == (3, 8)
    assert only_num(torch.randn(3, 2), torch.empty(3, 0, dtype=torch.long)).shape == (3, 8)
    with pytest.raises(ValueError, match="at least one"):
        TabularResNet(0, [])


@pytest.mark.parametrize("normalization", ["layernorm", "batchnorm"])
def test_batch_of_one_in_eval_mode(normalization):
    numerical, categorical = make_batch()
    model = TabularResNet(4, CARDINALITIES, d_model=16, num_blocks=2, normalization=normalization)
    model.train()
    model(numerical, categorical)  # populate batch-norm running statistics
    model.eval()
    single = model(numerical[:1], categorical[:1])
    assert single.shape == (1, 16)
    assert torch.allclose(single, model(numerical, categorical)[:1], atol=1e-5)


def test_reserved_indices_are_accepted_and_out_of_range_rejected():
    numerical, categorical = make_batch()
    model = TabularResNet(4, CARDINALITIES, d_model=8, num_blocks=1)
    model(numerical, torch.zeros_like(categorical))  # all missing
    model(numerical, categorical.clamp(max=CARDINALITIES[1] - 1 + NUM_RESERVED_INDICES))
    bad = categorical.clone()
    bad[2, 1] = CARDINALITIES[1] + NUM_RESERVED_INDICES  # one past the end of column 1
    with pytest.raises(ValueError, match="categorical column 1"):
        model(numerical, bad)
    with pytest.raises(ValueError, match=r"shape \(batch, 4\)"):
        model(numerical[:, :3], categorical)
    with pytest.raises(ValueError, match="integer"):
        model(numerical, categorical.float())


def test_config_round_trip_rebuilds_an_identical_model():
    torch.manual_seed(0)
    model = TabularResNet(4, CARDINALITIES, d_model=16, num_blocks=2, normalization="batchnorm")
    config = TabularResNetConfig.from_dict(model.config.to_dict())
    rebuilt = TabularResNet.from_config(config)
    rebuilt.load_state_dict(model.state_dict())
    numerical, categorical = make_batch()
    model.eval(), rebuilt.eval()
    assert torch.equal(model(numerical, categorical), rebuilt(numerical, categorical))
    assert TabularResNet.from_config(model.config.to_dict()).config == model.config


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda():
    numerical, categorical = make_batch()
    model = TabularResNet(4, CARDINALITIES, d_model=16, num_blocks=2).cuda()
    assert model(numerical.cuda(), categorical.cuda()).device.type == "cuda"


def test_the_constructor_takes_its_defaults_from_the_config():
    import dataclasses
    import inspect

    defaults = {
        f.name: f.default for f in dataclasses.fields(TabularResNetConfig) if f.default is not dataclasses.MISSING
    }
    parameters = inspect.signature(TabularResNet.__init__).parameters
    assert {name: parameters[name].default for name in defaults} == defaults
    assert TabularResNet(3, [2]).config == TabularResNetConfig(3, [2])


def test_embed_in_batches_matches_one_pass_and_restores_the_mode():
    from tabresnet_course.model import embed_in_batches

    torch.manual_seed(0)
    model = TabularResNet(4, CARDINALITIES, d_model=8, num_blocks=1, dropout=0.5)
    numerical, categorical = make_batch(batch_size=10, num_numerical=4)
    model.eval()
    with torch.no_grad():
        expected = model(numerical, categorical, return_embedding=True).numpy()
    model.train()
    embeddings = embed_in_batches(model, numerical.numpy(), categorical.numpy(), batch_size=3)
    assert embeddings.shape == (10, 8) and embeddings.dtype == "float32"
    torch.testing.assert_close(torch.from_numpy(embeddings), torch.from_numpy(expected), rtol=1e-5, atol=1e-6)
    assert model.training, "the training mode is restored"
    assert embed_in_batches(model, numerical[:0], categorical[:0]).shape == (0, 8)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        embed_in_batches(model, numerical, categorical, batch_size=0)


def test_embed_in_batches_gives_a_row_the_same_bits_in_any_grouping():
    """Every forward pass has one shape, so a row's embedding does not depend on the rows embedded
    with it: what lets Spark partitions reproduce the single-machine scores (tests/test_spark.py)."""
    from tabresnet_course.model import embed_in_batches

    torch.manual_seed(0)
    model = TabularResNet(4, CARDINALITIES, d_model=16, num_blocks=2)
    numerical, categorical = make_batch(batch_size=50, num_numerical=4)
    whole = embed_in_batches(model, numerical, categorical, batch_size=16)
    for sizes in ([1] * 7, [3, 2, 11, 5], [17, 33]):
        start = 0
        for size in sizes:
            rows = slice(start, start + size)
            assert np.array_equal(
                embed_in_batches(model, numerical[rows], categorical[rows], batch_size=16), whole[rows]
            )
            start += size


def test_fast_dropout_drops_at_the_rate_and_scales_the_rest():
    from tabresnet_course.model import DROPOUT_RESOLUTION, FastDropout

    torch.manual_seed(0)
    dropout = FastDropout(0.1)
    x = torch.ones(2_000_000)
    y = dropout(x)
    dropped = (y == 0).double().mean().item()
    expected = round(0.1 * DROPOUT_RESOLUTION) / DROPOUT_RESOLUTION
    sd = (expected * (1 - expected) / x.numel()) ** 0.5
    assert abs(dropped - expected) < 5 * sd  # 5 standard deviations: about 0.0011
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.9))
    assert abs(y.mean().item() - 1.0) < 0.002  # unbiased
    # Independent positions: neighbouring entries (same 64-bit word) are not correlated.
    kept = (y != 0).double().view(-1, 4)
    assert abs(torch.corrcoef(kept.T)[0, 1].item()) < 0.005
    # The gradient goes through the same mask; eval mode and p=0 are the identity.
    x = torch.randn(1000, requires_grad=True)
    out = dropout(x)
    out.sum().backward()
    assert torch.allclose(x.grad, (out / x).detach())
    dropout.eval()
    assert torch.equal(dropout(x), x)
    assert torch.equal(FastDropout(0.0)(x), x)
    torch.manual_seed(1)
    first = FastDropout(0.3)(torch.ones(100))
    torch.manual_seed(1)
    assert torch.equal(first, FastDropout(0.3)(torch.ones(100)))  # seeded
