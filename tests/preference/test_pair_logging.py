"""Per-pair objective state (R3M's delta, APS's tau) reaches W&B as histograms at each validation."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from methods.adaptive_pref import AdaptivePrefConfig
from methods.r3m import R3MConfig
from reprolab.config import typed  # noqa: F401  (schemas registered by conftest)
from reprolab.data.config import PreferenceFeaturesData
from reprolab.models.config import MLPReward
from reprolab.slots import Roles
from runners.lm.module import LMModule, pair_histograms


def _trained(objective, steps=2):
    source = PreferenceFeaturesData(n_train=50, test_pairs=4, test_items=4, batch_size=16).build(0)
    model = MLPReward().build()
    stream = source.train_batches(0, 0, 1)
    for _ in range(steps):
        objective.loss(model, next(stream))
    return model


def test_histograms_hold_the_visited_pairs_only():
    obj = R3MConfig()
    _trained(obj)  # 32 of 50 pairs visited
    hists = pair_histograms(obj.state_dict())
    assert set(hists) == {"delta"} and hists["delta"].numel() == 32 and torch.isfinite(hists["delta"]).all()
    assert pair_histograms({}) == {} and pair_histograms({"delta": torch.full((3,), float("nan"))}) == {}


def test_validation_end_logs_one_histogram_per_state_tensor_to_wandb():
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    class Recorder(WandbLogger):
        def __init__(self):
            super().__init__(offline=True)
            self.logged = []

        @property
        def experiment(self):
            return SimpleNamespace(log=self.logged.append)

    obj = AdaptivePrefConfig()
    model = _trained(obj)
    module = LMModule(model, Roles(objective=obj), None)
    rec = Recorder()
    module._trainer = SimpleNamespace(is_global_zero=True, loggers=[rec], global_step=7)
    module._log_pair_histograms()
    (entry,) = rec.logged
    assert isinstance(entry["pairs/tau"], wandb.Histogram) and entry["trainer/global_step"] == 7
