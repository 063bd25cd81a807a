"""Shared pytest fixtures."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run a test's tiny models on one thread: as fast, and it avoids oversubscribing a shared
    2-core machine, where extra OpenMP threads spinning against other processes slow training
    down tenfold. The previous thread count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
