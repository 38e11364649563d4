"""Every optimizer plugin: parameter groups over exactly the trainable tensors, and a few steps that
decrease a small next-token loss."""
from __future__ import annotations

import torch

from tests.roles.conftest import every, tiny_lm


@every("optimizer")
def test_optimizer_steps_and_decreases_a_small_loss(plugin):
    model = tiny_lm()
    if hasattr(plugin, "rank"):  # low-rank optimizers: a rank the 64-wide matrices can take
        plugin.rank = min(plugin.rank, 16)
    opt = plugin.build_optimizer(model)
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}
    x = torch.randint(0, 32, (4, 16), generator=torch.Generator().manual_seed(0))

    def loss():
        return model(input_ids=x, labels=x).loss

    first = loss().item()
    for _ in range(12):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < first
