"""One torch thread in these tests: the matrices are tiny, and OpenMP threads on a shared 2-core
machine spin against each other (a 1,400-step GD run takes 0.4 s on one thread, 30 s on two)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
