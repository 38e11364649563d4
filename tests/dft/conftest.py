from __future__ import annotations

import pytest
import torch


@pytest.fixture
def toy_run():
    """(source, model): the DFT toy data with its negatives made by a seeded tiny LLaMA (vocab 9)."""
    from methods.dft.data_config import DFTToyData
    from tests.roles.conftest import tiny_lm

    torch.manual_seed(0)
    model = tiny_lm(vocab=9)
    source = DFTToyData(batch_size=8, num_negatives=4).build(0)
    source.prepare(model)
    return source, model
