"""Every objective plugin on a batch of the data kind it consumes: a finite scalar loss, finite
gradients that reach the model, and validation sums with a positive count for ``loss``."""
from __future__ import annotations

import torch

from reprolab.models.assemble import frozen_copy
from reprolab.registry import plugins
from tests.roles.conftest import every, tiny_lm


def source_of(kind: str):
    """A registered data plugin of ``kind`` that builds offline with its defaults (a core one of
    `reprolab.data` when there is one: a method's own task data, e.g. DFT's, comes last)."""
    for name, cls in sorted(plugins("data").items(), key=lambda kv: (kv[1].__module__.startswith("methods."), kv[0])):
        if getattr(cls, "kind", None) != kind:
            continue
        try:
            return cls().build(0)
        except Exception:  # needs a file or the hub
            continue
    raise AssertionError(f"no registered data plugin of kind {kind!r} builds offline")


def model_for(source, plugin=None):
    """A tiny causal LM for token data (with a learnable global tau when the objective divides by a
    temperature); the default MLP reward model for item-feature pairs; a tiny dual encoder for
    contrastive pairs."""
    if source.kind == "contrastive":
        import torch

        from reprolab.models.config import ClipMLP

        torch.manual_seed(0)
        return ClipMLP(image_dim=source.cfg.image_dim, text_dim=source.cfg.text_dim, hidden_sizes=[16]).build()
    if plugin is not None and plugin.needs_temperature:
        from methods.global_tau import GlobalTauConfig
        from reprolab.models.assemble import attach_temperature

        model = tiny_lm(vocab=source.vocab_size)
        attach_temperature(model, GlobalTauConfig(learnable=True))
        return model
    if source.kind == "preference_features":
        import torch

        from reprolab.models.config import MLPReward

        torch.manual_seed(0)
        return MLPReward(input_dim=source.cfg.dim).build()
    return tiny_lm(vocab=source.vocab_size)


@every("objective")
def test_objective_gives_a_finite_loss_and_gradients(plugin):
    source = source_of(plugin.data_kind)
    model = model_for(source, plugin)
    if hasattr(source, "prepare"):  # data made with the initial model (DFT's negatives)
        source.prepare(model)
    batch = next(source.train_batches(0, 0, 1))
    reference = frozen_copy(model) if plugin.needs_reference else None
    with torch.no_grad():  # the policy moves away from its reference, as after a few steps
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    out = plugin.loss(model, batch, reference)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    if reference is not None:
        assert all(p.grad is None for p in reference.parameters())
    with torch.no_grad():
        sums = plugin.evaluate(model, batch, reference)
    total, count = sums["loss"]
    assert count > 0 and torch.isfinite(total / count)


def test_objective_state_travels_in_the_checkpoint():
    """The runner saves an objective's state with every checkpoint and restores it on resume."""
    from dataclasses import dataclass

    import pytest

    from methods.next_token import NextTokenConfig
    from reprolab.slots import Roles
    from runners.lm.module import LMModule

    @dataclass
    class Counting(NextTokenConfig):
        seen: int = 0

        def state_dict(self):
            return {"seen": self.seen}

        def load_state_dict(self, state):
            self.seen = state["seen"]

    saved = {}
    LMModule(tiny_lm(), Roles(objective=Counting(seen=7)), None).on_save_checkpoint(saved)
    fresh = Counting()
    LMModule(tiny_lm(), Roles(objective=fresh), None).on_load_checkpoint(saved)
    assert fresh.seen == 7
    with pytest.raises(ValueError, match="keeps no state"):
        NextTokenConfig().load_state_dict({"seen": 7})
