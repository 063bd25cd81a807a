"""Tests for tabresnet_course.training (chapters "The complete training loop", "Training best practices")."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tabresnet_course.data import OCSFDataset, TensorBatchLoader
from tabresnet_course.mfp import TabularResNetWithMFP
from tabresnet_course.model import NUM_RESERVED_INDICES, TabularResNet
from tabresnet_course.training import (
    EarlyStopping,
    Trainer,
    TrainingConfig,
    TrainingHistory,
    make_lr_scheduler,
    train_self_supervised,
)

CARDINALITIES = [4, 3, 5]


pytestmark = pytest.mark.usefixtures("one_thread")


def structured_data(rows: int = 320, seed: int = 0):
    """4 latent groups; every column carries the group, so there is structure to learn."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 4, rows)
    numerical = group[:, None] + 0.3 * rng.standard_normal((rows, 4))
    categorical = np.stack([group, group % 3, (group + rng.integers(0, 2, rows)) % 5], axis=1)
    return numerical.astype(np.float32), categorical + NUM_RESERVED_INDICES


def loaders(batch_size: int = 64):
    numerical, categorical = structured_data()
    train = TensorBatchLoader(numerical[:256], categorical[:256], batch_size=batch_size, seed=0)
    val = TensorBatchLoader(numerical[256:], categorical[256:], batch_size=batch_size, shuffle=False)
    return train, val


def new_model(mfp: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    model = TabularResNet(4, CARDINALITIES, d_model=16, num_blocks=1, dropout=0.1)
    return TabularResNetWithMFP(model, CARDINALITIES, 4) if mfp else model


def config(**overrides):
    settings = dict(num_epochs=4, progress=False, device="cpu", warmup_epochs=1, patience=3)
    settings.update(overrides)
    return TrainingConfig(**settings)


def comparable(history: TrainingHistory) -> dict:
    values = history.to_dict()
    values.pop("epoch_time_s")
    return values


# -- EarlyStopping -----------------------------------------------------------------------------


def test_early_stopping_stops_exactly_after_patience_calls_without_improvement():
    stopper = EarlyStopping(patience=3, min_delta=0.1)
    decisions = [stopper(loss) for loss in [1.0, 0.95, 0.95, 0.92]]  # none beats 1.0 - 0.1
    assert decisions == [False, False, False, True]
    assert stopper.best_loss == 1.0 and stopper.counter == 3


def test_early_stopping_resets_on_improvement_and_never_stops_early():
    stopper = EarlyStopping(patience=2, min_delta=0.0)
    losses = [5.0, 4.0, 4.0, 3.0, 3.5, 3.0, 2.9, 2.9, 2.9]
    decisions = [stopper(loss) for loss in losses]
    # losses:          5.0    4.0    4.0    3.0    3.5    3.0   2.9    2.9    2.9
    assert decisions == [False, False, False, False, False, True, False, False, True]
    stopper = EarlyStopping(patience=2, min_delta=0.0)
    assert [stopper(x) for x in [3.0, float("nan"), 2.0, float("nan"), float("nan")]] == [
        False,
        False,
        False,
        False,
        True,
    ]


def test_early_stopping_state_round_trip():
    stopper = EarlyStopping(patience=4, min_delta=0.01)
    for loss in [1.0, 0.9, 0.95]:
        stopper(loss)
    restored = EarlyStopping()
    restored.load_state_dict(stopper.state_dict())
    assert (
        restored.state_dict()
        == stopper.state_dict()
        == {"patience": 4, "min_delta": 0.01, "counter": 1, "best_loss": 0.9, "early_stop": False}
    )
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)


# -- schedule and configuration ----------------------------------------------------------------


def test_warmup_cosine_learning_rates_at_known_steps():
    base, floor, warmup, total = 1e-3, 1e-5, 4, 24
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=base)
    scheduler = make_lr_scheduler(optimizer, total_steps=total, warmup_steps=warmup, min_lr=floor)
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(total):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates[0] == pytest.approx(0.01 * base)  # warm-up starts at 1% of the rate
    assert rates[warmup // 2] == pytest.approx(base * (0.01 + 0.99 * 0.5))  # linear
    assert rates[warmup] == pytest.approx(base)  # end of warm-up
    assert rates[warmup + (total - warmup) // 2] == pytest.approx((base + floor) / 2)  # cosine midpoint
    assert rates[total] == pytest.approx(floor)  # end
    assert max(rates) == pytest.approx(base)


def test_trainer_schedule_spans_the_whole_run():
    train, _ = loaders(batch_size=64)  # 4 steps per epoch
    trainer = Trainer(new_model(), CARDINALITIES, config(num_epochs=3, learning_rate=2e-3, min_lr=0.0, warmup_epochs=1))
    history = trainer.fit(train)
    assert trainer.steps_per_epoch == 4
    assert history.learning_rate[0] == pytest.approx(2e-3)  # warm-up over exactly one epoch
    assert history.learning_rate[1] == pytest.approx(1e-3)  # cosine midpoint after epoch 2
    assert history.learning_rate[2] == pytest.approx(0.0, abs=1e-12)


def test_config_round_trip_and_validation():
    cfg = config(objective="both", precision="bf16", checkpoint_dir="/tmp/x")
    assert TrainingConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="objective"):
        TrainingConfig(objective="simclr")
    with pytest.raises(ValueError, match="min_lr"):
        TrainingConfig(learning_rate=1e-4, min_lr=1e-3)
    with pytest.raises(ValueError, match="unknown TrainingConfig fields"):
        TrainingConfig.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match="amp"):
        Trainer(new_model(), CARDINALITIES, config(precision="amp"))


def test_mfp_objective_needs_the_mfp_wrapper():
    with pytest.raises(ValueError, match="TabularResNetWithMFP"):
        Trainer(new_model(), CARDINALITIES, config(objective="mfp"))
    with pytest.raises(ValueError, match="cardinalities"):
        Trainer(new_model(), [4, 3], config())


# -- training runs -----------------------------------------------------------------------------


def test_resume_after_interruption_equals_the_uninterrupted_run(tmp_path):
    train, val = loaders()
    full = Trainer(new_model(mfp=True), CARDINALITIES, config(objective="both", checkpoint_dir=str(tmp_path / "a")))
    full_history = full.fit(train, val)

    first = Trainer(new_model(mfp=True), CARDINALITIES, config(objective="both", checkpoint_dir=str(tmp_path / "b")))
    first.fit(train, val, stop_after_epoch=2)  # the job "dies" after writing epoch 2's checkpoint
    assert len(first.history.epoch) == 2
    resumed = Trainer(
        new_model(mfp=True, seed=99), CARDINALITIES, config(objective="both", checkpoint_dir=str(tmp_path / "b"))
    )
    resumed_history = resumed.fit(train, val, resume_from=tmp_path / "b" / "last.pt")

    assert comparable(resumed_history) == comparable(full_history)
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    for key, value in full.optimizer.state_dict()["state"].items():
        assert torch.equal(value["exp_avg"], resumed.optimizer.state_dict()["state"][key]["exp_avg"])


def test_seeded_training_is_reproducible_and_the_seed_matters():
    train, val = loaders()
    runs = [Trainer(new_model(), CARDINALITIES, config(seed=seed)).fit(train, val) for seed in (7, 7, 8)]
    assert comparable(runs[0]) == comparable(runs[1])
    assert runs[0].train_loss != runs[2].train_loss


def test_early_stopping_ends_the_run(tmp_path):
    train, val = loaders()
    # A learning rate this small changes nothing: the validation loss never improves by min_delta.
    trainer = Trainer(
        new_model(),
        CARDINALITIES,
        config(num_epochs=20, learning_rate=1e-9, min_lr=0.0, patience=2, min_delta=1e-3, checkpoint_dir=str(tmp_path)),
    )
    history = trainer.fit(train, val)
    assert history.stopped_early and history.epoch == [1, 2, 3]
    assert history.best_epoch == int(np.argmin(history.val_loss)) + 1
    frame = history.to_dataframe()
    assert list(frame.columns) == ["train_loss", "val_loss", "learning_rate", "epoch_time_s"]
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()


def test_gradient_accumulation_and_bf16_run():
    train, val = loaders(batch_size=32)
    history = Trainer(new_model(), CARDINALITIES, config(num_epochs=1, accumulation_steps=2, precision="bf16")).fit(
        train, val
    )
    assert math.isfinite(history.train_loss[0]) and math.isfinite(history.val_loss[0])


def test_nan_inputs_fail_loudly():
    numerical, categorical = structured_data(64)
    numerical[3, 1] = np.nan
    loader = TensorBatchLoader(numerical, categorical, batch_size=32)
    with pytest.raises(FloatingPointError, match="NaN"):
        Trainer(new_model(), CARDINALITIES, config(num_epochs=1)).fit(loader)


def test_seed_call_signature_reduces_the_loss():
    """The seed chapter's exact call: a DataLoader over OCSFDataset and a caller-made optimizer."""
    numerical, categorical = structured_data(512)
    dataset = OCSFDataset(numerical, categorical)
    dataloader = DataLoader(dataset, batch_size=64, shuffle=True, num_workers=0)
    torch.manual_seed(0)
    model = TabularResNet(4, CARDINALITIES, d_model=32, num_blocks=2, dropout=0.1, num_classes=None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    losses = train_self_supervised(
        model, dataloader, optimizer, CARDINALITIES, num_epochs=6, device="cpu", progress=False
    )
    assert len(losses) == 6 and all(isinstance(x, float) for x in losses)
    assert losses[-1] < losses[0] - 0.05, losses
    assert optimizer.param_groups[0]["lr"] == 1e-3, "the seed's call keeps a constant learning rate"


def test_train_self_supervised_routes_options():
    train, val = loaders()
    model = new_model(mfp=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    stopper = EarlyStopping(patience=1, min_delta=10.0)  # nothing improves by 10: stop after epoch 2
    losses = train_self_supervised(
        model,
        train,
        optimizer,
        CARDINALITIES,
        num_epochs=5,
        objective="mfp",
        val_loader=val,
        early_stopping=stopper,
        scheduler="warmup_cosine",
        progress=False,
        seed=3,
    )
    assert len(losses) == 2 and stopper.early_stop
    with pytest.raises(TypeError, match="unknown options"):
        train_self_supervised(model, train, optimizer, CARDINALITIES, num_epochs=1, epochs=3)


def test_held_out_loss_is_fixed_for_fixed_weights_and_is_what_evaluate_reports():
    from tabresnet_course.training import held_out_loss

    _, val = loaders()
    model = new_model()
    trainer = Trainer(model, CARDINALITIES, config(seed=5))
    first = held_out_loss(trainer.objective, val, seed=5)
    assert model.training, "the training mode is restored"
    assert held_out_loss(trainer.objective, val, seed=5) == first == trainer.evaluate(val)
    assert held_out_loss(trainer.objective, val, seed=6) != first, "the seed fixes the views"
    rows = [(torch.from_numpy(n), torch.from_numpy(c)) for n, c in [structured_data(40)]]

    def mean_embedding_norm(numerical, categorical, generator):
        return model(numerical, categorical).norm(dim=1).mean()

    model.eval()
    with torch.no_grad():
        expected = float(mean_embedding_norm(*rows[0], None))
    model.train()
    assert held_out_loss(model, rows, seed=0, loss=mean_embedding_norm, precision="fp32") == pytest.approx(expected)


def test_device_and_process_plumbing(monkeypatch):
    from tabresnet_course.runtime import distributed_rank, distributed_world_size, resolve_device

    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert (distributed_rank(), distributed_world_size()) == (0, 1)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert (distributed_rank(), distributed_world_size()) == (2, 4), "torchrun's variables before the group is joined"


def test_fit_and_train_epoch_stay_short():
    import inspect

    for method in (Trainer.fit, Trainer.train_epoch):
        body = inspect.getsource(method).split('"""')[-1]
        assert len([line for line in body.splitlines() if line.strip()]) <= 25, method.__name__


def seed_call_loader(seed: int = 0, **options) -> DataLoader:
    numerical, categorical = structured_data()
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(OCSFDataset(numerical, categorical), batch_size=48, shuffle=True, generator=generator, **options)


def run_seed_call(loader, precision: str = "fp32", epochs: int = 3) -> list[float]:
    torch.manual_seed(0)
    model = TabularResNet(4, CARDINALITIES, d_model=16, num_blocks=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return train_self_supervised(
        model, loader, optimizer, CARDINALITIES, num_epochs=epochs, progress=False, precision=precision
    )


def test_a_dataloader_over_tensors_is_served_by_index_with_the_same_batches_and_losses():
    from torch.utils.data import default_collate

    from tabresnet_course.data import IndexedDataLoader

    loader = seed_call_loader(drop_last=True)
    fast = IndexedDataLoader.wrap(seed_call_loader(drop_last=True))  # its own, identically seeded generator
    assert fast is not None and len(fast) == len(loader) == 320 // 48
    for epoch in range(2):
        torch.manual_seed(epoch)
        expected = list(loader)
        torch.manual_seed(epoch)
        served = list(fast)
        assert len(served) == len(expected)
        for (num_a, cat_a), (num_b, cat_b) in zip(served, expected):
            assert torch.equal(num_a, num_b) and torch.equal(cat_a, cat_b)
    # A custom collate is respected: that loader is iterated as it is, and trains the same.
    custom = seed_call_loader(collate_fn=lambda rows: default_collate(rows))
    assert IndexedDataLoader.wrap(custom) is None
    assert run_seed_call(seed_call_loader()) == run_seed_call(custom)


def test_precision_auto_picks_bf16_only_where_it_is_native(monkeypatch):
    from tabresnet_course import runtime

    cpu = torch.device("cpu")
    assert runtime.resolve_precision("fp32", cpu) == "fp32"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.resolve_precision("auto", cpu) == "fp32"
    assert TrainingConfig().precision == "auto"
    trainer = Trainer(
        TabularResNet(4, CARDINALITIES, d_model=8, num_blocks=1), CARDINALITIES, TrainingConfig(progress=False)
    )
    assert trainer.precision == "fp32"


def test_bf16_loss_curve_stays_within_two_percent_of_fp32():
    fp32 = run_seed_call(seed_call_loader(), precision="fp32", epochs=4)
    bf16 = run_seed_call(seed_call_loader(), precision="bf16", epochs=4)
    assert fp32 != bf16  # bf16 really ran
    for a, b in zip(fp32, bf16):
        assert abs(a - b) <= 0.02 * abs(a)


def test_the_seed_call_without_a_generator_shuffles_from_the_global_seed_as_a_dataloader_does():
    from tabresnet_course.data import IndexedDataLoader

    numerical, categorical = structured_data()
    loader = DataLoader(OCSFDataset(numerical, categorical), batch_size=64, shuffle=True)
    fast = IndexedDataLoader.wrap(loader)
    torch.manual_seed(3)
    expected = [cat for _, cat in loader]
    torch.manual_seed(3)
    assert all(torch.equal(a, b) for (_, a), b in zip(fast, expected, strict=True))
    torch.manual_seed(4)
    assert not torch.equal(next(iter(fast))[1], expected[0])
