"""R3M (arXiv:2406.15568) against the math of spec ../shared/papers/r3m.md §2.3-2.5 and its §6 tests."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar

from methods.bt import BTConfig
from methods.dpo import DPOConfig
from methods.r3m import R3MConfig, R3MDPOConfig, profile_loss
from reprolab.checks import ConfigError
from reprolab.config import typed  # noqa: F401  (schemas registered by conftest)
from reprolab.data.config import PreferenceFeaturesData, PreferenceMarkovData
from reprolab.models.config import MLPReward
from tests.roles.conftest import tiny_lm

LAMS = [0.05, 0.3, 0.5, 0.75, 0.95]
D = torch.linspace(-6, 6, 41, dtype=torch.float64) + 0.0123  # margins, off the knots


def objective_in_delta(delta: float, d: float, lam: float) -> float:
    z = d + delta
    return (math.log1p(math.exp(-z)) if z >= 0 else -z + math.log1p(math.exp(z))) + lam * abs(delta)


@pytest.mark.parametrize("lam", LAMS)
def test_delta_closed_form_is_the_minimiser_and_stationary(lam):
    """§6.1-6.2: delta = max(log(1/lam - 1) - d, 0) minimises -log sigmoid(d + delta) + lam |delta| over
    [-20, 20] (brute force: a bounded scalar search); sigmoid(d + delta) = 1 - lam where delta > 0."""
    obj = R3MConfig(lam=lam)
    _, stats = obj.pair_losses(D, {})
    delta = stats["delta"]
    assert (delta >= 0).all()
    for d, dl in zip(D.tolist(), delta.tolist()):
        brute = minimize_scalar(objective_in_delta, bounds=(-20, 20), args=(d, lam), method="bounded",
                                options={"xatol": 1e-10}).x
        assert abs(brute - dl) < 1e-6, (d, lam, brute, dl)
    on = delta > 0
    assert torch.allclose(torch.sigmoid(D[on] + delta[on]), torch.full_like(D[on], 1 - lam), atol=1e-12)


@pytest.mark.parametrize("lam", LAMS)
def test_loss_is_the_huberised_logistic_profile_with_a_c1_knot(lam):
    """§6.3: min over delta equals the Huberised logistic loss; value and slope; slope -lam at the knot."""
    obj = R3MConfig(lam=lam)
    losses, _ = obj.pair_losses(D, {})
    assert torch.allclose(losses, profile_loss(D, lam), atol=1e-12)
    brute = torch.tensor([minimize_scalar(objective_in_delta, bounds=(-20, 20), args=(d, lam), method="bounded",
                                          options={"xatol": 1e-10}).fun for d in D.tolist()], dtype=torch.float64)
    assert torch.allclose(losses, brute, atol=1e-8)
    c = obj.knot
    for side in (c - 1e-7, c + 1e-7):
        x = torch.tensor([side], dtype=torch.float64, requires_grad=True)
        profile_loss(x, lam).sum().backward()
        assert abs(x.grad.item() + lam) < 1e-6


@pytest.mark.parametrize("lam", LAMS)
def test_gradient_is_bt_with_the_weight_capped_at_lambda(lam):
    """§6.4 (mean reduction): dL/dd_i = -min(1 - sigmoid(d_i), lam) / B, including the flagged pairs
    (delta detached); the near-miss that lets the gradient flow through delta (penalty only logged, as
    in the spec's step 4) gives them exactly zero."""
    x = D.clone().requires_grad_(True)
    R3MConfig(lam=lam).pair_losses(x, {})[0].mean().backward()
    expected = -torch.minimum(1 - torch.sigmoid(D), torch.tensor(lam, dtype=torch.float64)) / D.numel()
    assert torch.allclose(x.grad, expected, atol=1e-15)
    flagged = D < math.log(1 / lam - 1)
    assert flagged.any() and torch.allclose(x.grad[flagged], torch.full_like(D[flagged], -lam / D.numel()))
    near_miss = x.detach().clone().requires_grad_(True)
    delta = (math.log(1 / lam - 1) - near_miss).clamp(min=0)
    (-F.logsigmoid(near_miss + delta)).mean().backward()
    assert torch.all(near_miss.grad[flagged].abs() < 1e-15)  # what the detach prevents


@pytest.mark.parametrize("lam", LAMS)
def test_gradients_match_autograd_finite_differences(lam):
    obj = R3MConfig(lam=lam)
    c = obj.knot
    x = D[(D - c).abs() > 1e-3].clone().requires_grad_(True)  # away from the kink of delta
    assert torch.autograd.gradcheck(lambda z: obj.pair_losses(z, {})[0], (x,))


def test_lambda_to_one_is_bt():
    """§6.5: lam = 1 - 1e-9 reproduces BT's losses and gradients; with no pair below the knot R3M is BT exactly."""
    x = D.clone().requires_grad_(True)
    y = D.clone().requires_grad_(True)
    r3m = R3MConfig(lam=1 - 1e-9).pair_losses(x, {})[0]
    bt = BTConfig().pair_losses(y, {})[0]
    assert torch.allclose(r3m, bt, atol=1e-6)
    r3m.mean().backward(), bt.mean().backward()
    assert torch.allclose(x.grad, y.grad, atol=1e-6)
    above = D[D > 0.1]
    assert torch.equal(R3MConfig(lam=0.45).pair_losses(above, {})[0], BTConfig().pair_losses(above, {})[0])


def test_r3m_dpo_with_lambda_to_one_is_dpo_per_pair():
    """§6.6: on a tiny LLaMA and its reference, R3M-DPO with lam -> 1 equals DPO per example."""
    batch = next(PreferenceMarkovData(batch_size=6).build(0).train_batches(0, 0, 1))
    policy, reference = tiny_lm(vocab=32, seed=1), tiny_lm(vocab=32, seed=0)
    r3m, dpo = R3MDPOConfig(beta=0.3, lam=1 - 1e-9), DPOConfig(beta=0.3)
    with torch.no_grad():
        x = r3m.margins(policy, batch, reference)
        assert torch.equal(x, dpo.margins(policy, batch, reference))
        assert torch.allclose(r3m.pair_losses(x, batch)[0], dpo.pair_losses(x, batch)[0], atol=1e-6)
    obj = R3MDPOConfig()
    out = obj.loss(policy, batch, reference)  # a training step records delta per pair_id
    assert out["loss"].ndim == 0 and obj.deltas.shape == (int(batch["pair_id"].max()) + 1,)
    assert torch.isfinite(obj.deltas[batch["pair_id"]]).all()


def test_flagged_count_is_non_increasing_in_lambda():
    """§6.7: for a fixed model, the number of pairs with delta > 0 does not grow with lam."""
    counts = [int((R3MConfig(lam=lam).pair_losses(D, {})[1]["delta"] > 0).sum()) for lam in [0.1, 0.2, 0.4, 0.5, 0.6, 0.8, 0.9]]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]


def test_delta_buffer_holds_one_float_per_training_pair_and_round_trips():
    """§6.10: after one epoch the buffer has exactly n floats, each the delta of that pair at its last
    visit; state_dict / load_state_dict carry it; no other per-pair state."""
    data = PreferenceFeaturesData(n_train=100, test_pairs=8, test_items=8, batch_size=32, corruption="random", flip_rate=0.2)
    source = data.build(0)
    torch.manual_seed(0)
    model = MLPReward().build()
    obj = R3MConfig(lam=0.5)
    stream = source.train_batches(0, 0, 1)
    seen = {}
    for _ in range(4):  # ceil(100 / 32) batches: one epoch
        batch = next(stream)
        obj.loss(model, batch)
        with torch.no_grad():
            d = model(batch["chosen_features"]) - model(batch["rejected_features"])
        seen.update(dict(zip(batch["pair_id"].tolist(), (-d).clamp(min=0).tolist())))
    assert sorted(seen) == list(range(100))
    state = obj.state_dict()
    assert set(state) == {"delta"} and state["delta"].shape == (100,)
    assert torch.allclose(state["delta"], torch.tensor([seen[i] for i in range(100)]), atol=1e-6)
    fresh = R3MConfig()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.deltas, state["delta"])
    with pytest.raises(ValueError, match="keeps only 'delta'"):
        fresh.load_state_dict({"tau": state["delta"]})


def test_a_batch_without_pair_id_is_refused_naming_the_fix():
    batch = next(PreferenceFeaturesData(n_train=8, test_pairs=4, test_items=4, batch_size=4).build(0).train_batches(0, 0, 1))
    del batch["pair_id"]
    with pytest.raises(KeyError, match="pair_id"):
        R3MConfig().loss(MLPReward().build(), batch)


@pytest.mark.parametrize("lam", [0.0, 1.0, -0.2, 1.5])
def test_lambda_outside_the_open_unit_interval_is_a_config_error(lam):
    with pytest.raises(ConfigError, match="method.lam"):
        R3MConfig(lam=lam)
    with pytest.raises(ConfigError, match="method.lam"):
        R3MDPOConfig(lam=lam)
