"""DFT's estimator and surrogate loss against the math (spec ../shared/papers/dft.md §6 properties 1-5, 8,
11, 13), on float64 tensors."""
from __future__ import annotations

import math

import pytest
import torch

from methods.dft import DFT2Config, DFTConfig
from methods.dft.estimator import LogUTable, moving_average, surrogate_loss
from tests.dft.official_reference import OfficialDFT

B, M = 5, 3


def tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    lp_pos = (-20 * torch.rand(B, generator=g, dtype=torch.float64)).requires_grad_()
    lp_neg = (-20 * torch.rand(B, M, generator=g, dtype=torch.float64)).requires_grad_()
    ref_neg = -20 * torch.rand(B, M, generator=g, dtype=torch.float64)
    len_pos = torch.randint(1, 30, (B,), generator=g).double()
    len_neg = torch.randint(1, 30, (B, M), generator=g).double()
    ids = torch.tensor([4, 0, 7, 2, 9])
    return lp_pos, len_pos, lp_neg, len_neg, ref_neg, ids


def with_old_u(obj, ids, seed=1):
    old = torch.randn(ids.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    obj.table.set(ids, old)
    return old


# ---- 1. the log-space moving average ------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [0.1, 0.85, 0.999])
def test_moving_average_is_the_linear_space_average(gamma):
    g = torch.Generator().manual_seed(0)
    old, d = torch.randn(6, generator=g, dtype=torch.float64), 5 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    want = torch.log((1 - gamma) * old.exp() + gamma * d.exp().mean(1))
    torch.testing.assert_close(moving_average(old, d, gamma), want, rtol=1e-12, atol=0)


def test_gamma_one_ignores_the_old_value():
    d = torch.randn(6, 4, dtype=torch.float64)
    a = moving_average(torch.zeros(6, dtype=torch.float64), d, 1.0)
    b = moving_average(torch.full((6,), 1e6, dtype=torch.float64), d, 1.0)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, torch.log(d.exp().mean(1)), rtol=1e-12, atol=0)


def test_huge_log_weights_stay_finite():
    d = torch.tensor([[900.0, 899.0], [-900.0, -901.0]], dtype=torch.float64)
    out = moving_average(torch.zeros(2, dtype=torch.float64), d, 0.85)
    assert torch.isfinite(out).all() and out[0] > 899


# ---- 2. gamma = 1 self-normalises the weights ---------------------------------------------------------
@pytest.mark.parametrize("cfg", [DFTConfig(gamma=1.0), DFT2Config(gamma=1.0)])
def test_gamma_one_weights_average_to_one(cfg):
    lp_pos, len_pos, lp_neg, len_neg, ref_neg, ids = tensors()
    with_old_u(cfg, ids)
    from methods.dft.estimator import log_diffs

    d = log_diffs(lp_neg, len_neg, ref_neg, cfg.tau, cfg.reference_free)
    _, w = surrogate_loss(lp_pos, lp_neg, d, moving_average(cfg.table.get(ids).double(), d, 1.0))
    torch.testing.assert_close(w.mean(1), torch.ones(B, dtype=torch.float64), rtol=1e-12, atol=0)


# ---- 3. + 4. the gradient identity; weights and u carry no gradient -------------------------------------
@pytest.mark.parametrize("cls", [DFTConfig, DFT2Config])
def test_gradients_are_the_weighted_identity(cls):
    cfg = cls()
    lp_pos, len_pos, lp_neg, len_neg, ref_neg, ids = tensors()
    old = with_old_u(cfg, ids)
    out = cfg.step(lp_pos, len_pos, lp_neg, len_neg, ref_neg, ids)
    out["loss"].backward()
    if cfg.reference_free:
        d = lp_neg.detach() / len_neg / cfg.tau
    else:
        d = lp_neg.detach() / cfg.tau - ref_neg
    new = torch.log((1 - cfg.gamma) * old.exp() + cfg.gamma * d.exp().mean(1))
    w = torch.exp(d - new[:, None])
    scale_pos = len_pos if cfg.reference_free else torch.ones(B, dtype=torch.float64)
    scale_neg = len_neg if cfg.reference_free else torch.ones(B, M, dtype=torch.float64)
    torch.testing.assert_close(lp_pos.grad, -1 / (B * scale_pos), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(lp_neg.grad, w / (M * B * scale_neg), rtol=1e-6, atol=1e-14)
    torch.testing.assert_close(cfg.table.get(ids).double(), new, rtol=1e-6, atol=1e-7)  # stored in fp32


def test_no_gradient_reaches_u():
    lp_pos, _, lp_neg, _, ref_neg, _ = tensors()
    log_u = torch.zeros(B, dtype=torch.float64, requires_grad=True)
    d = (lp_neg / 1.0 - ref_neg).detach()
    loss, w = surrogate_loss(lp_pos, lp_neg, d, log_u)
    assert not w.requires_grad
    assert torch.autograd.grad(loss, log_u, allow_unused=True)[0] is None


# ---- 5. the first step of DFT from the reference --------------------------------------------------------
@pytest.mark.parametrize("reference", ["model", "cached"])
def test_first_step_from_the_reference_has_unit_weights(toy_run, reference):
    from methods.dft.objective import positive_and_negative_logps
    from reprolab.models.assemble import frozen_copy

    source, model = toy_run
    cfg = DFTConfig(reference=reference)
    batch = next(source.train_batches(0, 0, 1))
    out = cfg.loss(model, batch, frozen_copy(model) if cfg.needs_reference else None)
    assert out["weight"].item() == pytest.approx(1.0, abs=1e-5) and out["log_u"].item() == pytest.approx(0.0, abs=1e-5)
    with torch.no_grad():
        lp_pos, _, lp_neg, _ = positive_and_negative_logps(model, batch)
    assert out["loss"].item() == pytest.approx((-lp_pos + lp_neg.mean(1)).mean().item(), rel=1e-5)


def test_cached_reference_logps_are_the_base_models(toy_run):
    from methods.dft.objective import reference_logps_of_negatives

    source, model = toy_run
    batch = next(source.train_batches(3, 0, 1))
    torch.testing.assert_close(batch["neg_ref_logps"], reference_logps_of_negatives(model, batch), rtol=1e-5, atol=1e-5)


# ---- 8. DFT2 is reference-free and length-normalised -----------------------------------------------------
def test_dft2_ignores_the_reference():
    lp_pos, len_pos, lp_neg, len_neg, ref_neg, ids = tensors()
    a = DFT2Config().step(lp_pos, len_pos, lp_neg, len_neg, ref_neg, ids)["loss"]
    b = DFT2Config().step(lp_pos, len_pos, lp_neg, len_neg, torch.full_like(ref_neg, float("nan")), ids)["loss"]
    c = DFT2Config().step(lp_pos, len_pos, lp_neg, len_neg, None, ids)["loss"]
    assert a.item() == b.item() == c.item()
    assert not DFT2Config().needs_reference and DFTConfig(reference="model").needs_reference


# ---- 11. the state: 2n floats -------------------------------------------------------------------------
def test_state_is_two_floats_per_prompt_after_an_epoch(toy_run):
    source, model = toy_run
    cfg = DFT2Config()
    batches = source.train_batches(0, 0, 1)
    for _ in range(len(source.train) // source.cfg.batch_size):  # one epoch (256 / 8)
        with torch.no_grad():
            cfg.loss(model, next(batches))
    state = cfg.state_dict()
    n = len(source.train)
    assert sorted(state) == ["log_u", "u_mask"] and state["log_u"].shape == state["u_mask"].shape == (n,)
    assert sum(v.numel() for v in state.values()) == 2 * n and state["u_mask"].sum() == n
    fresh = DFT2Config()
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.table.log_u, state["log_u"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="another objective"):
        fresh.load_state_dict({"delta": torch.zeros(3)})


# ---- 13. against the official dft_loss / dft_loss_ref_free ---------------------------------------------
@pytest.mark.parametrize("cls,gamma", [(DFTConfig, 0.85), (DFTConfig, 1.0), (DFT2Config, 0.9), (DFT2Config, 1.0)])
def test_matches_the_official_loss_over_several_steps(cls, gamma):
    ours, official = cls(gamma=gamma), OfficialDFT(10, cls.tau, gamma, cls.reference_free)
    for step in range(4):  # the same ids revisited: u carries over
        lp_pos, len_pos, lp_neg, len_neg, ref_neg, ids = tensors(step)
        ids = torch.tensor([[4, 0, 7, 2, 9], [1, 3, 5, 6, 8]][step % 2])
        a_pos, a_neg = lp_pos.detach().clone().requires_grad_(), lp_neg.detach().clone().requires_grad_()
        loss = ours.step(lp_pos, len_pos, lp_neg, len_neg, ref_neg, ids)["loss"]
        ref = official.loss(a_pos, list(a_neg.unbind(1)), list(ref_neg.unbind(1)), ids, len_pos, list(len_neg.unbind(1)))
        loss.backward()
        ref.backward()
        assert loss.item() == pytest.approx(ref.item(), rel=1e-6, abs=1e-6)
        torch.testing.assert_close(lp_pos.grad, a_pos.grad, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(lp_neg.grad, a_neg.grad, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(ours.table.get(ids).double(), official.u[ids], rtol=1e-6, atol=1e-6)


def test_table_starts_at_u_init_and_grows():
    t = LogUTable(u_init=0.5)
    assert t.get(torch.tensor([3])).item() == 0.5 and t.log_u.numel() == 4 and t.mask.sum() == 0
    t.set(torch.tensor([1]), torch.tensor([2.0]))
    assert t.mask.tolist() == [0, 1, 0, 0] and t.log_u[1] == 2.0
    assert math.isclose(DFTConfig(u_init=0.5).table.get(torch.tensor([0])).item(), 0.5)
