"""Tests for tabresnet_course.artifacts and the trainer's checkpoints."""

import datetime
import os

import numpy as np
import pytest
import torch

from tabresnet_course.artifacts import (
    FORMAT_VERSION,
    atomic_save_torch,
    atomic_write_bytes,
    load_checkpoint,
    load_json,
    save_json_atomic,
    with_format_version,
)
from tabresnet_course.checkpoints import load_trained_model
from tabresnet_course.data import TensorBatchLoader
from tabresnet_course.errors import InputError
from tabresnet_course.model import NUM_RESERVED_INDICES, TabularResNet
from tabresnet_course.training import Trainer, TrainingConfig

PLAIN = (torch.Tensor, str, int, float, bool, type(None))


pytestmark = pytest.mark.usefixtures("one_thread")


def assert_plain(value, where="checkpoint"):
    """Only tensors and plain Python data, all the way down."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, (str, int)), f"{where}: key {key!r}"
            assert_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            assert_plain(item, f"{where}[{i}]")
    else:
        assert isinstance(value, PLAIN), f"{where} holds a {type(value).__name__}"


def test_atomic_save_and_weights_only_load_round_trip(tmp_path):
    payload = with_format_version({"weights": torch.arange(4.0), "config": {"d_model": 16, "names": ["a"]}})
    path = atomic_save_torch(payload, tmp_path / "sub" / "model.pt")
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["weights"], torch.arange(4.0))
    assert loaded["format_version"] == FORMAT_VERSION and loaded["config"]["names"] == ["a"]
    assert sorted(os.listdir(tmp_path / "sub")) == ["model.pt"], "no temporary file left behind"


def test_overwrite_is_refused_unless_asked(tmp_path):
    path = atomic_write_bytes(tmp_path / "f.bin", b"one")
    with pytest.raises(InputError, match="f.bin already exists"):
        atomic_write_bytes(path, b"two", overwrite=False)
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = atomic_write_bytes(tmp_path / "f.bin", b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "when": datetime.datetime(2024, 1, 1)}, path)  # needs unpickling
    with pytest.raises(
        InputError, match=r"evil.pt is not a valid checkpoint: .*pickled Python object \(datetime.datetime\)"
    ):
        load_checkpoint(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_truncated_or_corrupted_file_names_the_file(tmp_path, damage):
    path = atomic_save_torch(with_format_version({"w": torch.randn(100)}), tmp_path / "ckpt.pt")
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint" * 10, "empty": b""}[damage])
    with pytest.raises(InputError, match=r"ckpt\.pt is not a valid checkpoint"):
        load_checkpoint(path)


def test_missing_file_and_format_versions(tmp_path):
    with pytest.raises(InputError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    atomic_save_torch({"w": torch.zeros(1)}, tmp_path / "old.pt")
    with pytest.raises(InputError, match="old.pt .*format_version"):
        load_checkpoint(tmp_path / "old.pt")
    atomic_save_torch({"format_version": FORMAT_VERSION + 1}, tmp_path / "new.pt")
    with pytest.raises(InputError, match="new.pt has format_version"):
        load_checkpoint(tmp_path / "new.pt")
    atomic_save_torch([1, 2], tmp_path / "list.pt")
    with pytest.raises(InputError, match="expected a dict"):
        load_checkpoint(tmp_path / "list.pt")


def test_json_helpers(tmp_path):
    path = save_json_atomic({"b": 1, "a": [1.5, None]}, tmp_path / "c.json")
    assert load_json(path) == {"a": [1.5, None], "b": 1}
    with pytest.raises(ValueError):
        save_json_atomic({"x": float("nan")}, tmp_path / "nan.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.json"):
        load_json(tmp_path / "bad.json")


def small_run(tmp_path, **overrides):
    rng = np.random.default_rng(0)
    numerical = rng.standard_normal((96, 3)).astype(np.float32)
    categorical = rng.integers(0, 4, (96, 2)) + NUM_RESERVED_INDICES
    torch.manual_seed(0)
    model = TabularResNet(3, [4, 4], d_model=16, num_blocks=1)
    settings = dict(num_epochs=2, progress=False, device="cpu", checkpoint_dir=str(tmp_path / "run"))
    settings.update(overrides)
    trainer = Trainer(model, [4, 4], TrainingConfig(**settings))
    trainer.fit(
        TensorBatchLoader(numerical[:64], categorical[:64], batch_size=32),
        TensorBatchLoader(numerical[64:], categorical[64:], batch_size=32, shuffle=False),
    )
    return trainer


def test_training_checkpoints_hold_only_plain_data_and_rebuild_the_model(tmp_path):
    trainer = small_run(tmp_path)
    for name in ("best.pt", "last.pt"):
        checkpoint = load_checkpoint(tmp_path / "run" / name)
        assert_plain(checkpoint)
        assert checkpoint["model_class"] == "TabularResNet"
        assert checkpoint["training_config"]["num_epochs"] == 2
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["epoch"] == 2 and len(last["history"]["train_loss"]) == 2
    rebuilt = load_trained_model(tmp_path / "run" / "best.pt")
    best_epoch = trainer.history.best_epoch
    assert load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == best_epoch
    for key, value in trainer.model.state_dict().items():  # restore_best_weights: model == best.pt
        assert torch.equal(value, rebuilt.state_dict()[key])


def test_a_new_run_refuses_to_overwrite_checkpoints(tmp_path):
    small_run(tmp_path, num_epochs=1)
    with pytest.raises(InputError, match="already holds"):
        small_run(tmp_path, num_epochs=1)
    small_run(tmp_path, num_epochs=1, overwrite_checkpoints=True)


def test_atomic_writes_give_ordinary_permissions_and_leave_no_temporary(tmp_path):
    from tabresnet_course.artifacts import atomic_save_torch, ordinary_mode

    path = atomic_save_torch({"format_version": 1, "x": torch.zeros(2)}, tmp_path / "c.pt")
    assert path.stat().st_mode & 0o777 == ordinary_mode()
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_refuse_existing_is_the_one_overwrite_check(tmp_path):
    from tabresnet_course.artifacts import refuse_existing

    free, existing, folder = tmp_path / "free.csv", tmp_path / "existing.csv", tmp_path / "folder"
    existing.write_text("x")
    folder.mkdir()
    assert refuse_existing(free, overwrite=False) == free
    assert refuse_existing(existing, overwrite=True) == existing
    with pytest.raises(InputError, match="existing.csv already exists; pass --overwrite"):
        refuse_existing(existing, overwrite=False)
    for overwrite in (False, True):
        with pytest.raises(InputError, match="folder is a directory; give the path of a file"):
            refuse_existing(folder, overwrite)
    with pytest.raises(InputError, match="folder is a directory"):
        atomic_write_bytes(folder, b"never")
    # a directory of files: only an empty one, or one that holds what we write, is replaced
    assert refuse_existing(folder, overwrite=True, what="saved thing") == folder
    with pytest.raises(InputError, match="existing.csv exists and is not a directory"):
        refuse_existing(existing, overwrite=True, what="saved thing")
    (folder / "notes.txt").write_text("keep")
    with pytest.raises(InputError, match="folder is not empty and does not hold a saved thing"):
        refuse_existing(folder, overwrite=True, what="saved thing", replaceable=lambda path: False)
    assert refuse_existing(folder, True, "saved thing", lambda path: (path / "notes.txt").exists()) == folder


def test_atomic_write_directory_replaces_a_directory_whole(tmp_path):
    from tabresnet_course.artifacts import (
        atomic_write_directory,
        read_checked_bytes,
        sha256,
    )

    target = atomic_write_directory(tmp_path / "d", {"a.bin": b"one", "b.bin": b"two"}, overwrite=False, what="pair")
    with pytest.raises(InputError, match="already exists"):
        atomic_write_directory(target, {"a.bin": b"three"}, overwrite=False, what="pair")
    atomic_write_directory(target, {"a.bin": b"three"}, overwrite=True, what="pair", replaceable=lambda path: True)
    assert sorted(p.name for p in target.iterdir()) == ["a.bin"], "the old directory is gone as a whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"], "no staging or aside directory left behind"
    assert read_checked_bytes(target / "a.bin", sha256(b"three"), "the record") == b"three"
    with pytest.raises(
        InputError, match="a.bin is corrupted: its SHA-256 does not match the one recorded in the record"
    ):
        read_checked_bytes(target / "a.bin", sha256(b"one"), "the record")
