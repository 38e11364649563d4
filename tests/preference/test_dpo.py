"""DPO (Eq. 7 of arXiv:2305.18290) against an independent computation, and its special cases."""
from __future__ import annotations

import math

import pytest
import torch

from methods.dpo import DPOConfig
from reprolab.checks import ConfigError
from reprolab.config import typed  # noqa: F401  (schemas registered by conftest)
from reprolab.data.config import PreferenceMarkovData
from reprolab.models.assemble import frozen_copy
from tests.roles.conftest import tiny_lm


def _batch(flip=0.0):
    source = PreferenceMarkovData(batch_size=6, flip=flip).build(0)
    return next(source.train_batches(0, 0, 1))


def _naive_logp(model, ids, labels):
    """log p of each row's scored tokens, one position at a time from the full softmax."""
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=ids).logits.double(), -1)
    out = []
    for b in range(ids.shape[0]):
        out.append(sum(math.log(probs[b, t, labels[b, t]].item()) for t in range(ids.shape[1]) if labels[b, t] != -100))
    return torch.tensor(out, dtype=torch.float64)


def test_dpo_matches_an_independent_computation():
    batch = _batch()
    reference = tiny_lm(vocab=32, seed=0).eval()
    policy = tiny_lm(vocab=32, seed=1).eval()
    beta, eps = 0.3, 0.1
    h = beta * ((_naive_logp(policy, batch["chosen_input_ids"], batch["chosen_labels"])
                 - _naive_logp(reference, batch["chosen_input_ids"], batch["chosen_labels"]))
                - (_naive_logp(policy, batch["rejected_input_ids"], batch["rejected_labels"])
                   - _naive_logp(reference, batch["rejected_input_ids"], batch["rejected_labels"])))
    sig = torch.sigmoid(h)
    expected = (-(1 - eps) * torch.log(sig) - eps * torch.log(1 - sig)).mean()
    with torch.no_grad():
        out = DPOConfig(beta=beta, label_smoothing=eps).loss(policy, batch, reference)
    assert abs(out["loss"].item() - expected.item()) < 1e-5
    assert abs(out["reward_acc"].item() - (h > 0).double().mean().item()) < 1e-6  # an fp32 mean of 0s and 1s


def test_policy_equal_to_its_reference_gives_log_2():
    batch = _batch()
    policy = tiny_lm(vocab=32)
    out = DPOConfig().loss(policy, batch, frozen_copy(policy))
    assert abs(out["loss"].item() - math.log(2)) < 1e-6 and out["margin"].item() == 0.0


def test_flipped_labels_swap_the_pair():
    clean, noisy = _batch(), _batch(flip=1.0)
    assert noisy["flipped"].all()
    assert torch.equal(clean["chosen_input_ids"], noisy["rejected_input_ids"])
    policy, reference = tiny_lm(vocab=32, seed=1), tiny_lm(vocab=32, seed=0)
    with torch.no_grad():
        a = DPOConfig().evaluate(policy, clean, reference)["margin"][0]
        b = DPOConfig().evaluate(policy, noisy, reference)["margin"][0]
    assert torch.allclose(a, -b, atol=1e-5)


@pytest.mark.parametrize("kwargs, key", [({"beta": 0.0}, "method.beta"), ({"label_smoothing": 0.5}, "method.label_smoothing")])
def test_bad_values_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        DPOConfig(**kwargs)
