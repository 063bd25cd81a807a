"""Train a tiny TabularResNet on seeded dummy data; used by tests/test_ddp.py.

Run it alone (one process) or under ``torchrun --nproc_per_node=K``; the trainer notices
``WORLD_SIZE`` and switches to DistributedDataParallel by itself. Rank 0 writes the final
weights and the history to the path given on the command line.

    python tests/ddp_worker.py OUT.pt --batch-size 64 --accumulation 2
    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_worker.py OUT.pt --batch-size 64
"""

import argparse

import numpy as np
import torch

from tabresnet_course.data import TensorBatchLoader
from tabresnet_course.mfp import TabularResNetWithMFP
from tabresnet_course.model import NUM_RESERVED_INDICES, TabularResNet
from tabresnet_course.runtime import cleanup_distributed
from tabresnet_course.training import Trainer, TrainingConfig

CARDINALITIES = [4, 3, 6]
NUM_NUMERICAL = 5


def dummy_data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows from 4 latent groups; numerical and categorical columns both depend on the group."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 4, rows)
    numerical = group[:, None] + 0.5 * rng.standard_normal((rows, NUM_NUMERICAL))
    categorical = np.stack([group, group % 3, (group + rng.integers(0, 2, rows)) % 6], axis=1) + NUM_RESERVED_INDICES
    return numerical.astype(np.float32), categorical


def train(batch_size: int, accumulation: int = 1, objective: str = "both", epochs: int = 2) -> dict:
    """Train on the dummy data; returns final weights, history and world size (every process)."""
    numerical, categorical = dummy_data(768, seed=0)
    train_rows = 512
    train_loader = TensorBatchLoader(numerical[:train_rows], categorical[:train_rows], batch_size=batch_size, seed=1)
    val_loader = TensorBatchLoader(
        numerical[train_rows:], categorical[train_rows:], batch_size=batch_size, shuffle=False
    )
    torch.manual_seed(0)
    model = TabularResNet(NUM_NUMERICAL, CARDINALITIES, d_model=32, num_blocks=2, dropout=0.1)
    if objective != "contrastive":
        model = TabularResNetWithMFP(model, CARDINALITIES, NUM_NUMERICAL)
    config = TrainingConfig(
        objective=objective,
        num_epochs=epochs,
        accumulation_steps=accumulation,
        device="cpu",
        progress=False,
        seed=0,
    )
    trainer = Trainer(model, CARDINALITIES, config)  # joins the process group under torchrun
    history = trainer.fit(train_loader, val_loader)
    return {
        "state": model.state_dict(),
        "history": history.to_dict(),
        "world_size": trainer.world_size,
        "rank": trainer.rank,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per batch on each process")
    parser.add_argument("--accumulation", type=int, default=1)
    parser.add_argument("--objective", default="both")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    result = train(args.batch_size, args.accumulation, args.objective, args.epochs)
    if result.pop("rank") == 0:  # only rank 0 writes
        torch.save(result, args.out)
    cleanup_distributed()


if __name__ == "__main__":
    main()
