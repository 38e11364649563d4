"""The paper-scale TempNet experiments compose and validate (nothing is built or downloaded), with the
spec's hyperparameters (../shared/papers/tempnet.md §2.5)."""
from __future__ import annotations

import pytest

from reprolab.config import validate


@pytest.mark.parametrize("overrides, expect", [
    (["experiment=tempnet_gpt2_scratch", "objective=dro_lm", "objective.rho=8", "temperature=tempnet",
      "temperature.tau_min=0.5", "temperature.tau_max=5", "temperature.lr=2e-6", "temperature.weight_decay=0.1"],
     {"objective.rho": 8.0, "temperature.tau_min": 0.5, "temperature.lr": 2e-6, "model.vocab_size": 50304, "optimizer.lr": 6e-4,
      "trainer.max_steps": 50000, "seed": 12}),
    (["experiment=tempnet_gpt2_finetune", "objective=next_token"], {"model.pretrained": True, "model.vocab_size": 50257}),
    (["experiment=tempnet_llama2_7b"], {"objective.rho": 8.5, "temperature.frozen_model": True, "temperature.tau_max": 2.0,
                                        "data.seq_len": 512, "trainer.max_steps": 30000, "optimizer.lr": 1e-4}),
    (["experiment=tempnet_llama2_13b"], {"model.hidden_size": 5120, "temperature.frozen_model": True}),
    (["experiment=tempnet_clip_cc3m", "objective.rho=7", "temperature=tempnet_clip", "temperature.lr=3e-5"],
     {"objective.rho": 7.0, "objective.gamma": 0.8, "temperature.lr": 3e-5, "temperature.tau_max": 0.05,
      "model.embed_dim": 256, "data.max_len": 30, "optimizer.lr": 8e-4}),
    (["experiment=tempnet_clip_cc3m", "objective=clip"], {"objective.tau": 0.01}),
    (["experiment=tempnet_clip_cc3m", "objective=cyclip"], {"objective.tau": 0.01, "objective.inmodal": 0.25}),
])
def test_paper_experiment_validates(compose, overrides, expect):
    from omegaconf import OmegaConf

    cfg, _ = compose(overrides)
    validate(cfg)
    for key, value in expect.items():
        assert OmegaConf.select(cfg, key) == value, key
