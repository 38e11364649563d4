"""The pairwise interface (per-pair margins in, per-pair losses out) and the DPO-family losses
against their textbook formulas, evaluated one pair at a time in Python floats, on float64 margins."""
from __future__ import annotations

import math

import pytest
import torch

from methods.bt import BTConfig
from methods.dpo import DPOConfig
from methods.ipo import IPOConfig
from methods.rdpo import RDPOConfig
from methods.slic import SLiCConfig
from reprolab.checks import ConfigError
from reprolab.config import typed  # noqa: F401  (schemas registered by conftest)
from reprolab.data.config import PreferenceFeaturesData, PreferenceMarkovData
from reprolab.models.assemble import frozen_copy
from reprolab.models.config import MLPReward
from tests.roles.conftest import tiny_lm

H = torch.tensor([-7.5, -2.0, -0.3, 0.0, 0.01, 0.4, 1.7, 9.0], dtype=torch.float64)  # raw margins (h or d)


def log_sig(z: float) -> float:
    return -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))


def textbook(name: str, h: float, beta: float, eps: float) -> float:
    if name in ("bt", "dpo"):
        return -(1 - eps) * log_sig(beta * h) - eps * log_sig(-beta * h)
    if name == "ipo":
        return (h - 1 / (2 * beta)) ** 2
    if name == "slic":
        return max(0.0, 1 - beta * h)
    if name == "rdpo":
        return (-(1 - eps) * log_sig(beta * h) + eps * log_sig(-beta * h)) / (1 - 2 * eps)
    raise KeyError(name)


CASES = [("bt", BTConfig(beta=1.0), 1.0, 0.0), ("bt", BTConfig(beta=0.7, label_smoothing=0.2), 0.7, 0.2),
         ("dpo", DPOConfig(beta=0.1), 0.1, 0.0), ("dpo", DPOConfig(beta=0.3, label_smoothing=0.1), 0.3, 0.1),
         ("ipo", IPOConfig(beta=0.1), 0.1, 0.0), ("ipo", IPOConfig(beta=0.5), 0.5, 0.0),
         ("slic", SLiCConfig(beta=0.1), 0.1, 0.0), ("slic", SLiCConfig(beta=2.0), 2.0, 0.0),
         ("rdpo", RDPOConfig(beta=0.1, flip_rate=0.1), 0.1, 0.1), ("rdpo", RDPOConfig(beta=1.0, flip_rate=0.3), 1.0, 0.3),
         ("rdpo", RDPOConfig(beta=0.2, flip_rate=0.0), 0.2, 0.0)]


@pytest.mark.parametrize("name, objective, beta, eps", CASES, ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in CASES])
def test_pair_losses_match_the_textbook_formula(name, objective, beta, eps):
    losses, _ = objective.pair_losses(beta * H, {})
    assert losses.dtype == torch.float64
    expected = torch.tensor([textbook(name, h, beta, eps) for h in H.tolist()], dtype=torch.float64)
    assert torch.allclose(losses, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("objective", [c[1] for c in CASES if c[0] != "slic"], ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in CASES if c[0] != "slic"])
def test_pair_loss_gradients_match_autograd_finite_differences(objective):
    x = (objective.beta * H).clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: objective.pair_losses(z, {})[0], (x,))


def test_slic_gradient_is_minus_beta_inside_the_hinge_and_zero_outside():
    obj = SLiCConfig(beta=0.5)
    h = H.clone().requires_grad_(True)
    obj.pair_losses(obj.beta * h, {})[0].sum().backward()
    expected = torch.where(0.5 * H < 1, torch.tensor(-0.5, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64))
    assert torch.equal(h.grad, expected) and (expected == 0).any() and (expected != 0).any()


def test_rdpo_is_unbiased_under_random_flips():
    """E over a flip with probability eps of the rDPO loss equals the clean DPO loss (its defining property)."""
    eps, obj = 0.2, RDPOConfig(beta=1.0, flip_rate=0.2)
    x = H
    expected = (1 - eps) * obj.pair_losses(x, {})[0] + eps * obj.pair_losses(-x, {})[0]
    assert torch.allclose(expected, -torch.nn.functional.logsigmoid(x), atol=1e-12)
    assert torch.equal(RDPOConfig(flip_rate=0.0).pair_losses(x, {})[0], DPOConfig().pair_losses(x, {})[0])


def test_dpo_is_bt_on_the_policy_margin():
    batch = next(PreferenceMarkovData(batch_size=6).build(0).train_batches(0, 0, 1))
    policy, reference = tiny_lm(vocab=32, seed=1), tiny_lm(vocab=32, seed=0)
    with torch.no_grad():
        a = DPOConfig(beta=0.2, label_smoothing=0.1).loss(policy, batch, reference)
        b = BTConfig(margin="policy", beta=0.2, label_smoothing=0.1).loss(policy, batch, reference)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert DPOConfig().needs_reference and DPOConfig().data_kind == "preference"
    assert not BTConfig().needs_reference and BTConfig().data_kind == "preference_features"


def test_reward_margins_are_r_chosen_minus_r_rejected():
    source = PreferenceFeaturesData(n_train=64, test_pairs=8, test_items=8, batch_size=5).build(0)
    batch = next(source.train_batches(0, 0, 1))
    torch.manual_seed(0)
    model = MLPReward().build()
    with torch.no_grad():
        out = BTConfig(beta=2.0).loss(model, batch)
        d = torch.stack([model(batch["chosen_features"][i : i + 1])[0] - model(batch["rejected_features"][i : i + 1])[0]
                         for i in range(5)])
    expected = torch.stack([-torch.nn.functional.logsigmoid(2.0 * v) for v in d]).mean()
    assert torch.allclose(out["loss"], expected, atol=1e-6)
    assert torch.allclose(out["margin"], 2.0 * d.mean(), atol=1e-6)


def test_policy_margin_without_a_reference_is_refused():
    batch = next(PreferenceMarkovData(batch_size=2).build(0).train_batches(0, 0, 1))
    with pytest.raises(ValueError, match="needs the frozen reference"):
        IPOConfig().loss(tiny_lm(vocab=32), batch, None)


def test_ipo_at_the_reference_is_one_over_four_beta_squared():
    batch = next(PreferenceMarkovData(batch_size=4).build(0).train_batches(0, 0, 1))
    policy = tiny_lm(vocab=32)
    out = IPOConfig(beta=0.25).loss(policy, batch, frozen_copy(policy))
    assert abs(out["loss"].item() - 4.0) < 1e-9  # (0 - 1/(2*0.25))^2


@pytest.mark.parametrize("cls, kwargs, key", [
    (BTConfig, {"margin": "value"}, "method.margin"), (BTConfig, {"beta": -1.0}, "method.beta"),
    (BTConfig, {"label_smoothing": 0.5}, "method.label_smoothing"), (IPOConfig, {"beta": 0.0}, "method.beta"),
    (SLiCConfig, {"beta": 0.0}, "method.beta"), (RDPOConfig, {"flip_rate": 0.5}, "method.flip_rate"),
    (RDPOConfig, {"flip_rate": -0.1}, "method.flip_rate")])
def test_bad_values_name_the_key(cls, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        cls(**kwargs)
