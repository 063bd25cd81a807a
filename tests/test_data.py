"""Tests for tabresnet_course.data (chapters "The complete training loop", "Training best practices")."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from torch.utils.data import DataLoader

from tabresnet_course.data import OCSFDataset, TensorBatchLoader, derive_seed
from tabresnet_course.model import NUM_RESERVED_INDICES, PADDING_INDEX, UNKNOWN_INDEX
from tabresnet_course.preprocess import TabularPreprocessor, preprocess_ocsf_data


def table(rows: int = 10):
    numerical = np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)
    categorical = np.arange(rows).reshape(rows, 1) % 4 + NUM_RESERVED_INDICES
    return numerical, categorical


# -- OCSFDataset and TensorBatchLoader ---------------------------------------------------------


def test_dataset_converts_types_and_works_with_dataloader():
    numerical, categorical = table(10)
    dataset = OCSFDataset(numerical.astype(np.float64), categorical.astype(np.int32))
    assert len(dataset) == 10
    assert dataset.numerical.dtype == torch.float32 and dataset.categorical.dtype == torch.int64
    num, cat = next(iter(DataLoader(dataset, batch_size=4)))
    assert num.shape == (4, 2) and cat.shape == (4, 1)
    with pytest.raises(ValueError, match="rows"):
        OCSFDataset(numerical, categorical[:5])
    with pytest.raises(ValueError, match="integer"):
        OCSFDataset(numerical, categorical.astype(np.float32))


@pytest.mark.parametrize("rows,batch_size", [(10, 3), (12, 4), (1, 5), (100, 7)])
def test_loader_covers_every_row_exactly_once_per_epoch(rows, batch_size):
    numerical, categorical = table(rows)
    loader = TensorBatchLoader(numerical, categorical, batch_size=batch_size, seed=3)
    orders = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == len(loader) == -(-rows // batch_size)
        assert all(num.shape[0] == cat.shape[0] <= batch_size for num, cat in batches)
        seen = torch.cat([num[:, 0] for num, _ in batches]).long() // 2  # row index from the data
        assert sorted(seen.tolist()) == list(range(rows))
        orders.append(seen.tolist())
    if rows > 5:
        assert orders[0] != orders[1], "a new permutation every epoch"


def test_set_epoch_is_deterministic_and_iteration_advances_the_epoch():
    numerical, categorical = table(20)
    a = TensorBatchLoader(numerical, categorical, batch_size=6, seed=1)
    b = TensorBatchLoader(numerical, categorical, batch_size=6, seed=1)
    first = [n for n, _ in a]  # epoch 0, then the loader moves to epoch 1
    second = [n for n, _ in a]
    b.set_epoch(1)
    assert all(torch.equal(x, y) for x, (y, _) in zip(second, b))
    b.set_epoch(0)
    assert all(torch.equal(x, y) for x, (y, _) in zip(first, b))
    other_seed = TensorBatchLoader(numerical, categorical, batch_size=6, seed=2)
    assert not torch.equal(torch.cat(first), torch.cat(list(n for n, _ in other_seed)))


def test_no_shuffle_keeps_order_and_drop_last_drops_the_tail():
    numerical, categorical = table(10)
    loader = TensorBatchLoader(numerical, categorical, batch_size=4, shuffle=False, drop_last=True)
    batches = [cat for _, cat in loader]
    assert len(batches) == len(loader) == 2
    assert torch.equal(loader.epoch_indices(), torch.arange(8))


@pytest.mark.parametrize("rows", [24, 25, 31])
def test_shards_are_disjoint_and_cover_the_table(rows):
    numerical, categorical = table(rows)
    world = 3
    shards = [
        TensorBatchLoader(numerical, categorical, batch_size=4, seed=5, rank=r, world_size=world) for r in range(world)
    ]
    indices = [shard.epoch_indices(epoch=2) for shard in shards]
    assert len({len(shard) for shard in shards}) == 1, "every process runs the same number of steps"
    assert len({i.numel() for i in indices}) == 1, "every process sees the same number of rows"
    union = torch.cat(indices)
    assert set(union.tolist()) == set(range(rows))
    padding = (-rows) % world
    assert union.numel() == rows + padding  # repeats only where the table does not divide evenly
    if padding == 0:
        for a in range(world):
            for b in range(a + 1, world):
                assert not set(indices[a].tolist()) & set(indices[b].tolist())
    for shard, idx in zip(shards, indices):
        shard.set_epoch(2)
        assert torch.equal(torch.cat([n for n, _ in shard])[:, 0].long() // 2, idx)


def test_rank_batches_are_slices_of_the_single_process_batches():
    """Rank r's i-th batch of B rows == batch i*K + r of one process with batch size B: the
    basis of the DDP / gradient-accumulation equivalence tested in test_ddp.py."""
    numerical, categorical = table(48)
    single = list(TensorBatchLoader(numerical, categorical, batch_size=4, seed=9))
    for rank in range(2):
        shard = TensorBatchLoader(numerical, categorical, batch_size=4, seed=9, rank=rank, world_size=2)
        for i, (num, _) in enumerate(shard):
            assert torch.equal(num, single[2 * i + rank][0])


def test_from_dataset_and_shard_share_the_tensors():
    dataset = OCSFDataset(*table(10))
    loader = TensorBatchLoader.from_dataset(dataset, batch_size=5, seed=0)
    assert loader.numerical is dataset.numerical
    shard = loader.shard(1, 2)
    assert shard.rank == 1 and shard.world_size == 2 and shard.numerical is dataset.numerical
    with pytest.raises(ValueError, match="rank"):
        TensorBatchLoader(*table(4), rank=2, world_size=2)


def test_derive_seed_separates_keys():
    assert derive_seed(0, 1) == derive_seed(0, 1)
    assert derive_seed(0, 1) != derive_seed(1, 0)


# -- TabularPreprocessor -----------------------------------------------------------------------


def events(rows: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "bytes": rng.lognormal(8, 2, rows),
            "duration": rng.normal(1.0, 0.2, rows),
            "user": rng.choice(["alice", "bob", "carol"], rows),
            "port": rng.choice([22, 443, 8080], rows).astype(float),
        }
    )
    frame.loc[3, "bytes"] = np.nan
    frame.loc[4, "user"] = None
    frame.loc[5, "port"] = np.nan
    frame.loc[6, "user"] = "mallory"  # seen once: rare at min_category_count=2
    return frame


def test_transform_shapes_types_and_reserved_indices():
    frame = events()
    pre = TabularPreprocessor(["bytes", "duration"], ["user", "port"]).fit(frame)
    numerical, categorical = pre.transform(frame)
    assert numerical.dtype == np.float32 and categorical.dtype == np.int64
    assert pre.numerical_feature_names_ == ["bytes", "duration", "bytes_missing"]
    assert numerical.shape == (40, 3) and categorical.shape == (40, 2)
    assert pre.cardinalities_ == [4, 3]
    assert pre.categories_[1] == ["22", "443", "8080"], "integral floats become integer strings"
    assert categorical[4, 0] == PADDING_INDEX and categorical[5, 1] == PADDING_INDEX
    real = np.delete(categorical, [4, 5], axis=0)
    assert real.min() >= NUM_RESERVED_INDICES
    assert (categorical < np.array(pre.cardinalities_) + NUM_RESERVED_INDICES).all()
    assert numerical[3, 2] == 1.0 and numerical[:, 2].sum() == 1.0, "missing indicator"
    assert np.isfinite(numerical).all()
    assert abs(float(np.delete(numerical[:, 1], 3).mean())) < 0.1, "standardised"


def test_missing_indicators_can_be_turned_off():
    frame = events()
    pre = TabularPreprocessor(["bytes", "duration"], ["user"], missing_indicators=False).fit(frame)
    numerical, _ = pre.transform(frame)
    assert pre.numerical_feature_names_ == ["bytes", "duration"] and numerical.shape == (40, 2)
    assert np.isfinite(numerical).all(), "missing values are still imputed"
    restored = TabularPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert np.array_equal(restored.transform(frame)[0], numerical)


def test_unseen_categories_nan_inf_and_strings_in_transform():
    pre = TabularPreprocessor(["bytes", "duration"], ["user", "port"]).fit(events())
    new = pd.DataFrame(
        {
            "bytes": [np.inf, -np.inf, "n/a", 5.0],
            "duration": [np.nan, 1.0, 1.0, 1e30],
            "user": ["eve", "alice", None, "bob"],
            "port": [31337, 22, 443.0, np.nan],
        }
    )
    with pytest.warns(UserWarning, match="'bytes': 1"):
        numerical, categorical = pre.transform(new)
    assert np.isfinite(numerical).all()
    assert numerical[:3, 2].tolist() == [1.0, 1.0, 1.0] and numerical[3, 2] == 0.0
    assert numerical[3, 1] == pre.clip_value, "absurd values are clipped"
    assert categorical[0].tolist() == [UNKNOWN_INDEX, UNKNOWN_INDEX]
    assert categorical[2, 0] == PADDING_INDEX and categorical[3, 1] == PADDING_INDEX
    report = pre.last_report_
    assert report["coerced_to_nan"] == {"bytes": 1}
    assert report["non_finite"] == {"bytes": 2}
    assert report["unknown_categories"] == {"user": 1, "port": 1}


def test_rare_categories_map_to_unknown():
    frame = events()
    pre = TabularPreprocessor([], ["user"], min_category_count=2).fit(frame)
    assert "mallory" not in pre.categories_[0] and pre.cardinalities_ == [3]
    _, categorical = pre.transform(frame)
    assert categorical[6, 0] == UNKNOWN_INDEX
    counts = frame["user"].value_counts()
    threshold = int(counts.min()) + 1
    pre = TabularPreprocessor([], ["user"], min_category_count=threshold).fit(frame)
    assert set(pre.categories_[0]) == set(counts[counts >= threshold].index)
    with pytest.raises(ValueError, match="'user'"):
        TabularPreprocessor([], ["user"], min_category_count=1000).fit(frame)


def test_missing_column_and_bad_input_errors_name_the_problem():
    pre = TabularPreprocessor(["bytes"], ["user"]).fit(events())
    with pytest.raises(ValueError, match="'user'"):
        pre.transform(events().drop(columns="user"))
    with pytest.raises(ValueError, match="DataFrame"):
        pre.transform(events().to_numpy())
    with pytest.raises(ValueError, match="not fitted"):
        TabularPreprocessor(["bytes"], []).transform(events())
    with pytest.raises(NotFittedError, match="TabularPreprocessor is not fitted"):
        TabularPreprocessor(["bytes"], []).to_dict()
    with pytest.raises(ValueError, match="scaler"):
        TabularPreprocessor(["bytes"], [], scaler="minmax").fit(events())


def test_to_dict_from_dict_gives_identical_transforms():
    frame = events()
    pre = TabularPreprocessor(
        ["bytes", "duration"], ["user", "port"], min_category_count=2, scaler="robust", log1p_cols=["bytes"]
    ).fit(frame)
    restored = TabularPreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    other = events(rows=50, seed=1)
    other.loc[0, "user"] = "zed"
    for data in (frame, other):
        a, b = pre.transform(data), restored.transform(data)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert restored.get_params() == pre.get_params()
    assert restored.cardinalities_ == pre.cardinalities_
    with pytest.raises(ValueError, match="kind"):
        TabularPreprocessor.from_dict({"params": {}})


def test_the_preprocessor_is_a_scikit_learn_estimator():
    pre = TabularPreprocessor(["bytes"], ["user"], min_category_count=2, log1p_cols=["bytes"]).fit(events())
    params = pre.get_params(deep=True)
    assert params == {
        "numerical_cols": ["bytes"],
        "categorical_cols": ["user"],
        "min_category_count": 2,
        "clip_value": 10.0,
        "scaler": "standard",
        "log1p_cols": ["bytes"],
        "missing_indicators": True,
    }
    fresh = clone(pre)
    assert fresh.get_params() == params and not hasattr(fresh, "cardinalities_"), "clone copies parameters only"
    assert "min_category_count=2" in repr(fresh) and "scaler" not in repr(fresh), "repr shows changed parameters"
    with pytest.raises(ValueError, match="missing_indicator"):
        fresh.set_params(missing_indicator=False)


def test_one_indicator_per_column_and_one_text_per_category():
    frame = events()
    frame["bytes_missing"] = frame["bytes"].isna().astype(float)  # the featuriser's own indicator
    frame["mfa"] = [True, False] * 20
    frame.loc[7, "port"] = np.inf
    pre = TabularPreprocessor(["bytes", "duration", "bytes_missing"], ["mfa", "port"]).fit(frame)
    assert pre.numerical_feature_names_ == ["bytes", "duration", "bytes_missing"], "no second indicator"
    assert pre.categories_ == [["false", "true"], ["22", "443", "8080"]], "an infinite port is missing"
    saved = pre.to_dict()
    saved["fitted"]["numerical_feature_names_"] = ["bytes", "duration", "bytes_missing"]
    legacy = TabularPreprocessor(["bytes", "duration"], ["port"]).fit(events()).to_dict()
    legacy["fitted"]["numerical_feature_names_"] = ["bytes", "duration", "bytes__missing"]
    restored = TabularPreprocessor.from_dict(legacy)
    assert restored.numerical_feature_names_ == ["bytes", "duration", "bytes_missing"], "older names still load"


def test_get_params_and_preprocess_ocsf_data():
    frame = events()
    numerical, categorical, pre = preprocess_ocsf_data(frame, ["bytes"], ["user"], min_category_count=2)
    assert pre.get_params()["min_category_count"] == 2
    assert numerical.shape == (40, 2) and categorical.shape == (40, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = pre.transform(frame)
    assert np.array_equal(again[0], numerical) and np.array_equal(again[1], categorical)
