"""Every optimizer plugin trains a tiny ill-conditioned problem (the kozistr/pytorch_optimizer check).

Teacher-student regression through a two-layer tanh network, inputs with covariance eigenvalues
from 1e-2 to 1e2 (the spec's §5.1 probe, smaller). Each method is built from its own
conf/optimizer/<name>.yaml, chosen with its ``method=<name>`` preset (plus the overrides below), through its
plugin's ``build_optimizer``.
"""
import pytest
import torch

from reprolab.config import typed
from reprolab.registry import plugins

# What a 16 x 32 problem needs on top of each method's paper-scale defaults.
OVERRIDES = {
    "adamw": ["method.lr=1e-2"],
    "adam_mini": ["method.lr=1e-2"],
    "sgd": ["method.lr=0.01"],
    "cosmos": ["method.rank=4", "method.lr=2e-2"],
    "galore": ["method.rank=4", "method.lr=1e-2", "method.update_proj_gap=20"],
    "muon": ["method.lr=0.02", "method.adam_lr=1e-2"],
    "soap": ["method.lr=1e-2"],
}
OPTIMIZERS = sorted(plugins("optimizer"))


def test_every_optimizer_is_listed():
    assert {"adamw", "sgd", "cosmos", "muon", "soap", "galore", "adam_mini"} <= set(OPTIMIZERS)


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(32, 32, generator=g))
    cov_sqrt = basis @ torch.diag(torch.logspace(-1, 1, 32)) @ basis.T  # covariance eigenvalues 1e-2 .. 1e2
    x = torch.randn(512, 32, generator=g) @ cov_sqrt
    teacher = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8))
    with torch.no_grad():
        y = teacher(x)
    return x, y


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_loss_falls(compose, name):
    cfg, _ = compose([f"method={name}", *OVERRIDES.get(name, [])])
    x, y = _problem()
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8))
    opt = typed(cfg.method).build_optimizer(model)
    losses = []
    for step in range(150):
        idx = torch.arange(step * 64, (step + 1) * 64) % 512
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step(lambda: loss)
        losses.append(loss.item())
    full = torch.nn.functional.mse_loss(model(x), y).item()
    first = sum(losses[:5]) / 5
    assert torch.isfinite(torch.tensor(losses)).all()
    assert full < 0.3 * first, (name, first, full)
