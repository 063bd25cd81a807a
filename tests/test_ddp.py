"""Distributed training: 2 processes under torchrun (gloo, CPU) against one process.

What is compared. With K processes of B rows each, every optimisation step sees one global
batch of K*B rows, and DDP averages the K gradients. Each process computes the loss on its own
B rows: the contrastive loss uses the other rows *of its own shard* as negatives and as donors
for marginal resampling, and MFP averages over its own masked cells. That is the usual DDP
semantics, and it is exactly what one process computes with gradient accumulation over K
micro-batches of B rows, provided micro-batch k of a step sees the same rows and the same random
numbers as process k. The loaders (TensorBatchLoader shards) and the trainer (randomness drawn
from (seed, epoch, step, process * accumulation + micro-batch)) guarantee both, so the single
process reference is "batch B, accumulation_steps=K".

It is *not* identical to one process with batch K*B and no accumulation: that run's contrastive
loss sees K*B-1 negatives per row instead of B-1, a different loss, so no tolerance would make
that comparison meaningful.

Tolerance: both runs use one thread per process (torchrun sets OMP_NUM_THREADS=1; we set it for
the reference), and on this machine the final weights and every logged loss came out bitwise
equal (max |difference| 0.0). With two threads in the reference instead, the matmul reduction
order changes and the weights differed by up to 6e-8. The assertion allows 1e-6.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = WORKER.parents[1]


def run(command: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_process_ddp_matches_one_process_with_gradient_accumulation(tmp_path):
    ddp_out = tmp_path / "ddp.pt"
    run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(WORKER),
            str(ddp_out),
            "--batch-size",
            "64",
            "--accumulation",
            "1",
        ],
        tmp_path,
    )
    # The reference runs in this process (saves an interpreter start), on one thread like each rank.
    sys.path.insert(0, str(WORKER.parent))
    from ddp_worker import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = train(batch_size=64, accumulation=2)
    finally:
        torch.set_num_threads(threads)
        sys.path.remove(str(WORKER.parent))
    ddp = torch.load(ddp_out, weights_only=True)
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    for name in ("train_loss", "val_loss"):
        assert ddp["history"][name] == pytest.approx(single["history"][name], abs=1e-6), name
    differences = {
        key: (ddp["state"][key].float() - single["state"][key].float()).abs().max().item() for key in single["state"]
    }
    worst = max(differences, key=differences.get)
    assert differences[worst] <= 1e-6, f"{worst} differs by {differences[worst]}"
    changed = (ddp["state"]["base_model.input_projection.weight"] != 0).any()
    assert changed and ddp["history"]["train_loss"][-1] < ddp["history"]["train_loss"][0]
