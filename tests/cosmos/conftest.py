"""One intra-op thread per test process: `make test` runs two xdist workers on two shared cores,
and two threads per worker oversubscribe them (measured: a 15x slowdown of these tests)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
