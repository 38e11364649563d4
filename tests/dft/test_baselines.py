"""The self-play baselines of DFT (../shared/papers/dft.md §3) against their textbook formulas in float64,
gradient-checked, and on real batches of DFT's pairwise view."""
from __future__ import annotations

import math

import pytest
import torch

from methods.dpop import DPOPConfig
from methods.kto import KTOConfig
from methods.orpo import ORPOConfig
from methods.sequence_pairs import PairTerms
from methods.simpo import SimPOConfig
from methods.simpo_sft import SimPOSFTConfig
from reprolab.checks import ConfigError

B = 6


def terms(seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    t = [(-30 * torch.rand(B, generator=g, dtype=torch.float64) - 0.5) for _ in range(4)]
    n = [torch.randint(1, 40, (B,), generator=g).double() for _ in range(2)]
    pw, pl, rw, rl = (x.requires_grad_(grad) for x in t)
    return PairTerms(pw, pl, n[0], n[1], rw, rl)


def sig(v):
    return 1 / (1 + math.exp(-v))


def textbook(name, cfg, i, t, z0=0.0):
    """Per pair i, written out with Python floats from the papers' equations."""
    pw, pl, nw, nl, rw, rl = (float(v[i]) for v in (t.pw, t.pl, t.nw, t.nl, t.rw, t.rl))
    if name == "simpo":
        return -math.log(sig(cfg.beta * pw / nw - cfg.beta * pl / nl - cfg.gamma_s))
    if name == "simpo_sft":
        return -math.log(sig(cfg.beta * pw / nw - cfg.beta * pl / nl - cfg.gamma_s)) + cfg.lam * (-pw / nw)
    if name == "orpo":
        p_w, p_l = math.exp(pw / nw), math.exp(pl / nl)
        ratio = math.log(p_w / (1 - p_w)) - math.log(p_l / (1 - p_l))
        return -pw / nw - cfg.beta * math.log(sig(ratio))
    if name == "dpop":
        h = (pw - rw) - (pl - rl)
        return -math.log(sig(cfg.beta * (h - cfg.lam * max(0.0, rw - pw))))
    if name == "kto":
        return (cfg.lam_d * (1 - sig(cfg.beta * ((pw - rw) - z0))) + cfg.lam_u * (1 - sig(cfg.beta * (z0 - (pl - rl))))) / 2
    raise KeyError(name)


CASES = {"simpo": SimPOConfig(), "simpo_sft": SimPOSFTConfig(lam=0.7), "orpo": ORPOConfig(beta=0.2),
         "dpop": DPOPConfig(lam=5.0), "kto": KTOConfig(lam_d=1.3, lam_u=0.8)}


def losses_of(name, cfg, t, z0=0.3):
    if name == "kto":
        return cfg.from_terms(t, {}, z0=torch.tensor(z0, dtype=torch.float64))[1]
    return cfg.from_terms(t, {})[1]


@pytest.mark.parametrize("name", sorted(CASES))
def test_losses_are_the_textbook_formulas(name):
    cfg = CASES[name]
    for seed in range(3):
        t = terms(seed)
        if name == "dpop":  # half the pairs below the reference on the chosen answer: the penalty acts
            t.rw = t.pw + torch.linspace(-2, 2, B, dtype=torch.float64)
        got = losses_of(name, cfg, t)
        want = [textbook(name, cfg, i, t, z0=0.3) for i in range(B)]
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_pass_gradcheck(name):
    cfg = CASES[name]
    t = terms(1)
    nw, nl = t.nw, t.nl

    def f(pw, pl, rw, rl):
        return losses_of(name, cfg, PairTerms(pw, pl, nw, nl, rw, rl)).sum()

    inputs = tuple(x.detach().clone().requires_grad_() for x in (t.pw, t.pl, t.rw, t.rl))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)


def test_simpo_target_margin_and_dpop_penalty_move_the_loss():
    t = terms(2)
    assert (SimPOConfig(gamma_s=0.0).from_terms(t, {})[1] < SimPOConfig(gamma_s=1.6).from_terms(t, {})[1]).all()
    t.rw = t.pw + 1.0  # chosen 1 nat below the reference: DPOP adds lam * 1 inside the margin
    x0, x50 = DPOPConfig(lam=0.0).from_terms(t, {})[0], DPOPConfig(lam=50.0).from_terms(t, {})[0]
    torch.testing.assert_close(x0 - x50, torch.full((B,), 0.1 * 50.0, dtype=torch.float64))


def test_a_reward_margin_is_refused():
    with pytest.raises(ConfigError, match="method.margin must be policy"):
        SimPOConfig(margin="reward")


def test_kto_kl_reference_point_uses_mismatched_answers(toy_pairs):
    from methods.kto.mismatch import mismatched_batch, split_rows

    batch = toy_pairs
    rows = split_rows(batch["chosen_input_ids"], batch["chosen_labels"], batch["chosen_attention_mask"])
    m = mismatched_batch(batch)
    mixed = split_rows(m["input_ids"], m["labels"], m["attention_mask"])
    for i, (prompt, answer) in enumerate(mixed):
        assert prompt == rows[i][0] and answer == rows[(i + 1) % len(rows)][1]


@pytest.mark.parametrize("name", sorted(CASES))
def test_baselines_train_on_dfts_pairs(name, toy_pairs):
    from reprolab.models.assemble import frozen_copy
    from tests.roles.conftest import tiny_lm

    cfg = CASES[name]
    model = tiny_lm(vocab=9)
    ref = frozen_copy(model) if cfg.needs_reference else None
    out = cfg.loss(model, toy_pairs, ref)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and "reward_acc" in out


@pytest.fixture
def toy_pairs():
    from methods.dft.data_config import DFTToyPairsData
    from tests.roles.conftest import tiny_lm

    source = DFTToyPairsData(batch_size=5, num_negatives=2).build(0)
    source.prepare(tiny_lm(vocab=9))
    return next(source.train_batches(0, 0, 1))
