"""Every temperature plugin: at its identity setting the logits are unchanged bit for bit, in training
and in decoding; its tau network is part of the model (trainable parameters reach the optimizer)."""
from __future__ import annotations

import torch

from reprolab.models.assemble import attach_temperature
from tests.roles.conftest import every, tiny_lm


@every("temperature")
def test_temperature_identity_leaves_logits_unchanged(plugin):
    if plugin.reads == "embedding":  # a contrastive dual encoder's tau: one per anchor, 1 at identity
        from reprolab.models.config import ClipMLP

        model = ClipMLP(image_dim=8, text_dim=8, hidden_sizes=[16], embed_dim=8).build()
        attach_temperature(model, type(plugin)(**type(plugin).identity))
        e = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
        assert all(torch.equal(t, torch.ones(6)) for t in model.temperature.eval()(e, e))
        return
    ids = torch.randint(0, 32, (2, 12), generator=torch.Generator().manual_seed(0))
    base = tiny_lm().eval()
    tempered = tiny_lm().eval()
    attach_temperature(tempered, type(plugin)(**type(plugin).identity))
    with torch.no_grad():
        assert torch.equal(base(input_ids=ids).logits, tempered(input_ids=ids).logits)
        assert torch.equal(base.generate(ids, max_new_tokens=5, do_sample=False),
                           tempered.generate(ids, max_new_tokens=5, do_sample=False))
    assert "temperature" in dict(tempered.named_children())
    trainable = [n for n, p in tempered.named_parameters() if p.requires_grad and n.startswith("temperature.")]
    if trainable:  # a learnable tau gets a gradient from the loss
        tempered(input_ids=ids, labels=ids).loss.backward()
        assert all(dict(tempered.named_parameters())[n].grad is not None for n in trainable)
