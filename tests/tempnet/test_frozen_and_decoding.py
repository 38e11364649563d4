"""Both training modes (spec §2.4) and the decoding paths (issue 19): on a frozen LM only TempNet moves
and the LM stays bit-identical; jointly, both move; every decoding path (greedy and sampling, with the
full cache or GEAR) divides the logits by the tau TempNet predicts from them."""
from __future__ import annotations

import torch

from methods.adamw import AdamWConfig
from methods.dro_lm import DroLmConfig
from methods.tempnet import TempNetConfig
from reprolab.models.assemble import attach_temperature
from tests.roles.conftest import tiny_lm


def _train(frozen: bool, steps: int = 3):
    model = tiny_lm()
    attach_temperature(model, TempNetConfig(hidden=8, tau_min=0.05, tau_max=5.0, frozen_model=frozen))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = AdamWConfig(lr=1e-2, weight_decay=0.1).build_optimizer(model)
    objective = DroLmConfig(rho=1.0)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        ids = torch.randint(0, 32, (4, 10), generator=g)
        opt.zero_grad()
        objective.loss(model, {"input_ids": ids, "labels": ids})["loss"].backward()
        opt.step()
    return model, before, opt


def test_frozen_mode_moves_only_tempnet():
    model, before, opt = _train(frozen=True)
    after = model.state_dict()
    lm = [k for k in after if not k.startswith("temperature.")]
    assert lm and all(torch.equal(after[k], before[k]) for k in lm)
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("temperature."))
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in model.temperature.parameters()}  # TempNet's and nothing else


def test_joint_mode_moves_both():
    model, before, _ = _train(frozen=False)
    after = model.state_dict()
    assert not torch.equal(after["lm_head.weight"], before["lm_head.weight"])
    assert not torch.equal(after["temperature.last.weight"], before["temperature.last.weight"])


def _tempered_model():
    torch.manual_seed(3)
    model = tiny_lm().eval()
    attach_temperature(model, TempNetConfig(hidden=8, tau_min=0.2, tau_max=5.0))
    with torch.no_grad():  # a tau that varies from token to token
        for p in model.temperature.parameters():
            p.add_(2 * torch.randn_like(p))
    return model


def _manual_tempered_logits(model, ids):
    """Full forward without cache; the head's logits divided by TempNet's tau of those logits."""
    hidden = model.model(input_ids=ids).last_hidden_state[:, -1]
    raw = torch.nn.functional.linear(hidden, model.lm_head.weight)
    return raw / model.temperature(raw)


def test_logits_are_divided_by_the_predicted_tau():
    model = _tempered_model()
    ids = torch.randint(0, 32, (3, 7))
    with torch.no_grad():
        out = model(input_ids=ids).logits[:, -1]
        torch.testing.assert_close(out, _manual_tempered_logits(model, ids), rtol=1e-4, atol=1e-4)
        raw = torch.nn.functional.linear(model.model(input_ids=ids).last_hidden_state[:, -1], model.lm_head.weight)
        tau = model.temperature(raw)
    assert tau.std() > 0.01  # tau differs between the rows: the check above sees a per-row division


def test_greedy_decoding_with_any_cache_follows_the_tempered_logits():
    """Greedy decoding through the full cache and through GEAR (2-bit) against a cache-free loop that
    applies tau by hand (sampling draws from the same logits: ``choose(s.logits)`` in `decode.free_run`)."""
    from methods.fp16.config import FP16Config
    from methods.gear import GearConfig
    from runners.generate import decode

    model = _tempered_model()
    ids = torch.randint(0, 32, (2, 6), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        seq = ids
        for _ in range(5):
            seq = torch.cat([seq, _manual_tempered_logits(model, seq).argmax(-1, keepdim=True)], 1)
        for cache in (FP16Config(), GearConfig(bits=4, buffer=4, group=4)):
            from reprolab.models.attention import install

            install(model, cache)
            free = decode.free_run(model, cache.make_cache(model.config), ids, mask, 5, lambda t: False)
            got = torch.tensor([list(t) for t in free.tokens])
            if isinstance(cache, FP16Config):
                assert torch.equal(got, seq[:, 6:])
            else:  # a compressed cache may change a token; the first step sees the full prompt
                assert torch.equal(got[:, 0], seq[:, 6])


def _optimizers(temperature, frozen_lm: bool = False):
    """The lm runner's optimizer and schedule for a tiny LM with ``temperature`` (cosine schedule, 100 steps)."""
    from types import SimpleNamespace

    from reprolab.slots import Roles
    from runners.lm.config import LMRunner
    from runners.lm.module import LMModule

    model = tiny_lm()
    attach_temperature(model, temperature)
    module = LMModule(model, Roles(optimizer=AdamWConfig(lr=1e-3, weight_decay=0.1), objective=DroLmConfig(),
                                   temperature=temperature), LMRunner(schedule="cosine", min_lr_ratio=0.1))
    module._trainer = SimpleNamespace(max_steps=100)
    out = module.configure_optimizers()
    return model, out["optimizer"], out["lr_scheduler"]["scheduler"]


def test_tempnet_has_one_group_of_its_own_at_a_constant_lr():
    """Spec §6.8: TempNet's parameters are in exactly one group, with its lr, unscheduled; the LM's follow the schedule."""
    model, opt, sched = _optimizers(TempNetConfig(hidden=8, lr=2e-6, weight_decay=0.1))
    tau = {id(p) for p in model.temperature.parameters()}
    groups = [g for g in opt.param_groups if any(id(p) in tau for p in g["params"])]
    assert len(groups) == 1 and {id(p) for p in groups[0]["params"]} == tau
    assert groups[0]["lr"] == 2e-6 and groups[0]["weight_decay"] == 0.1
    others = [g for g in opt.param_groups if g is not groups[0]]
    assert others and all(not any(id(p) in tau for p in g["params"]) for g in others)
    for _ in range(60):
        opt.step()
        sched.step()
    assert groups[0]["lr"] == 2e-6 and all(g["lr"] < 1e-3 for g in others)  # the LM's cosine moved on
    _, opt, _ = _optimizers(TempNetConfig(hidden=8))  # no lr: TempNet trains in the model's groups
    assert all(g["lr"] == 1e-3 for g in opt.param_groups)


def test_frozen_lm_tempnet_lr_applies_to_its_only_group():
    model, opt, sched = _optimizers(TempNetConfig(hidden=8, lr=5e-4, frozen_model=True))
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.temperature.parameters()}
    for _ in range(60):
        opt.step()
        sched.step()
    assert all(g["lr"] == 5e-4 for g in opt.param_groups)
