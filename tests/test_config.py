"""Every config composes and validates; bad input fails at compose/validation time, naming the key."""
from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from reprolab.checks import ConfigError
from reprolab.config import typed, validate
from reprolab.registry import CONF_DIR, ROOT, methods, options
from reprolab.roles import CacheMethod, LossMethod, OptimizerMethod, SolverMethod

GROUPS = ["model", "data", "method", "runner", "trainer", "hardware", "logger", "callbacks", "paths", "launcher",
          "experiment", "problem"]


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_composes_and_validates(compose, group):
    assert options(group), f"conf/{group}/ is empty"
    # Without the default experiment (quickstart sets lm-runner and optimizer keys such as method.lr).
    base = [] if group == "experiment" else ["~experiment"]
    for option in options(group):
        # `problem` is not in the root defaults (only numeric experiments pick one): append it
        cfg, _ = compose([*base, f"{'+' if group == 'problem' else ''}{group}={option}"])
        validate(cfg)


def test_groups_are_all_listed():
    on_disk = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
    assert on_disk == sorted(GROUPS + ["hydra"])


def test_unknown_group_option_lists_the_available_ones(compose):
    with pytest.raises(ConfigCompositionException) as e:
        compose(["method=adamq"])
    msg = str(e.value)
    assert "adamq" in msg and "adamw" in msg and "sgd" in msg


@pytest.mark.parametrize("override, key", [("method.lrr=0.1", "lrr"), ("data.batchsize=4", "batchsize"),
                                           ("model.hidden=4", "hidden"), ("runner.shedule=cosine", "shedule")])
def test_typo_in_a_key_fails_at_compose_time_naming_it(compose, override, key):
    with pytest.raises((ConfigCompositionException, ConfigKeyError, HydraException)) as e:
        compose([override])
    assert key in str(e.value)


def test_wrong_type_fails_at_compose_time(compose):
    with pytest.raises((ConfigCompositionException, ValidationError)) as e:
        compose(["method.lr=fast"])
    assert "lr" in str(e.value)


@pytest.mark.parametrize("override, key", [
    ("method.lr=-0.1", "method.lr"), ("method.betas=[0.9,1.5]", "method.betas[1]"),
    ("data.batch_size=0", "data.batch_size"), ("data.seq_len=-4", "data.seq_len"),
    ("model.num_heads=3", "model.hidden_size"), ("runner.schedule=exp", "runner.schedule"),
    ("method=sgd method.momentum=1.0", "method.momentum"),
])
def test_out_of_range_values_name_the_key(compose, override, key):
    cfg, _ = compose(override.split())
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert key in str(e.value)


def test_registry_matches_the_method_yamls():
    assert sorted(methods()) == options("method")


def test_registering_schemas_is_lazy():
    """Start-up imports schemas only: no transformers, triton, datasets or kernels."""
    code = ("import sys; from reprolab.registry import register_schemas; register_schemas(); "
            "heavy = [m for m in ('transformers', 'triton', 'datasets', 'lightning', 'wandb') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def method_schema(name: str) -> type:
    """The schema class ``conf/method/<name>.yaml`` names in its defaults list (no composing)."""
    ref = next(d for d in OmegaConf.load(CONF_DIR / "method" / f"{name}.yaml").defaults
               if isinstance(d, str) and d.startswith("/schema/method/"))
    return methods()[ref.removeprefix("/schema/method/").split("@")[0]]


OPTIMIZERS = [name for name in options("method") if issubclass(method_schema(name), OptimizerMethod)]


@pytest.mark.parametrize("name", options("method"))
def test_every_method_instantiates(compose, name):
    """Each method's YAML composes into its typed schema, one of the runner roles."""
    cfg, _ = compose(["~experiment", f"method={name}"])
    method = typed(cfg.method)
    assert type(method) is method_schema(name)
    assert isinstance(method, (OptimizerMethod, LossMethod, CacheMethod, SolverMethod)), type(method).__mro__


def test_optimizer_list_is_not_empty():
    assert {"adamw", "sgd", "cosmos"} <= set(OPTIMIZERS)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_steps(compose, name):
    """Each optimizer plugin builds its parameter groups for a tiny model and takes a step."""
    import torch

    cfg, _ = compose(["~experiment", f"method={name}"])
    model = typed(cfg.model).build(vocab_size=32)
    opt = typed(cfg.method).build_optimizer(model)
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}
    x = torch.randint(0, 32, (2, 8))
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):  # SOAP's first step only builds its preconditioner (as the reference's does)
        opt.zero_grad()
        model(input_ids=x, labels=x).loss.backward()
        opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_cfg_job_prints_the_resolved_config():
    out = subprocess.run([sys.executable, "run.py", "--cfg", "job", "method=sgd"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "momentum: 0.9" in out.stdout and "max_steps:" in out.stdout
