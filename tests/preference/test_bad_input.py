"""Bad input to the preference objectives: each a clear error naming the problem and the fix.
(lambda outside (0, 1): test_r3m; tau bounds and rho0: test_adaptive_pref; a reference of another
vocabulary: tests/test_compose.py; the text data's bad pairs: test_preference_text.)"""
from __future__ import annotations

import pytest
import torch

from methods.bt import BTConfig
from methods.dpo import DPOConfig
from methods.pairwise import NonFiniteMarginError
from methods.r3m import R3MConfig
from reprolab.config import typed  # noqa: F401  (schemas registered by conftest)
from reprolab.data.config import PreferenceFeaturesData, PreferenceMarkovData
from reprolab.models.assemble import frozen_copy
from reprolab.models.config import MLPReward
from tests.roles.conftest import tiny_lm


def _features_batch():
    return next(PreferenceFeaturesData(n_train=64).build(0).train_batches(0, 0, 1))


@pytest.mark.parametrize("objective", [BTConfig(), R3MConfig()])
def test_nan_features_stop_the_step_naming_the_data(objective):
    batch = _features_batch()
    batch["chosen_features"][3, 0] = float("nan")
    with pytest.raises(NonFiniteMarginError, match=r"of 1 of 64 pairs is NaN or infinite.*features hold NaN"):
        objective.loss(MLPReward().build(), batch)


def test_a_diverged_reward_model_stops_the_step_naming_the_learning_rate():
    model = MLPReward().build()
    with torch.no_grad():
        model.net[-1].bias.fill_(float("inf"))  # r(w) - r(l) = inf - inf
    with pytest.raises(NonFiniteMarginError, match=r"64 of 64 pairs.*optimizer.lr"):
        R3MConfig().loss(model, _features_batch())
    with pytest.raises(NonFiniteMarginError):  # validation too: a NaN never reaches a table
        R3MConfig().evaluate(model, _features_batch())


def test_a_nan_policy_margin_is_refused():
    batch = next(PreferenceMarkovData(batch_size=4).build(0).train_batches(0, 0, 1))
    model = tiny_lm(vocab=32)
    reference = frozen_copy(model)
    with torch.no_grad():
        model.lm_head.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteMarginError, match="margin=policy"):
        DPOConfig().loss(model, batch, reference)


def test_a_reference_trained_on_another_tokenizer_is_refused(tmp_path):
    """Llama-2's and Mistral's tokenizers both have 32000 tokens: the vocabulary check cannot tell them apart,
    the tokenizer recorded in the checkpoint's run folder can."""
    import yaml

    from reprolab.checks import ConfigError
    from runners.generate.model import load_weights

    model = tiny_lm(vocab=32)
    run = tmp_path / "sft"
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, run / "checkpoints" / "last.ckpt")
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"tokenizer": "meta-llama/Llama-2-7b-hf"}}))
    with pytest.raises(ConfigError, match=r"runner.reference_from=.* was trained on data.tokenizer='meta-llama/Llama-2-7b-hf'"
                                          r".*data.tokenizer='mistralai/Mistral-7B-v0.1'"):
        load_weights(tiny_lm(vocab=32), str(run), "runner.reference_from", "mistralai/Mistral-7B-v0.1")
    other = tiny_lm(vocab=32, seed=5)
    load_weights(other, str(run), "runner.reference_from", "meta-llama/Llama-2-7b-hf")  # the same tokenizer: loads
    assert torch.equal(other.lm_head.weight, model.lm_head.weight)
