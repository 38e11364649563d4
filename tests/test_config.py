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
from reprolab.registry import CONF_DIR, ROLES, ROOT, options, plugins, role_of

GROUPS = ["model", "data", "runner", "trainer", "hardware", "logger", "callbacks", "paths", "launcher",
          "experiment", "problem"]
ROLE_GROUPS = [r for r in ROLES if (CONF_DIR / r).is_dir()]
# A runner that takes each role (composing a plugin under a runner without its slot is an error).
RUNNER_FOR = {"optimizer": [], "objective": [], "adapter": [], "temperature": [], "kv_cache": ["runner=generate"],
              "steering": ["runner=generate", "kv_cache=fp16"], "solver": ["runner=numeric", "+problem=matrix_factorization"]}
RUNNER_NEEDS = {"generate": ["kv_cache=fp16"], "numeric": ["solver=nag_mf", "+problem=matrix_factorization"]}


@pytest.mark.parametrize("group", GROUPS + ROLE_GROUPS + ["method"])
def test_every_option_composes_and_validates(compose, group):
    assert options(group), f"conf/{group}/ is empty"
    # Without the default experiment (quickstart sets lm-runner and optimizer keys such as method.lr).
    base = [] if group == "experiment" else ["~experiment"]
    for option in options(group):
        runner = RUNNER_FOR[role_of(option) if group == "method" else group] if group in ROLES + ("method",) else []
        runner = RUNNER_NEEDS.get(option, []) if group == "runner" else runner
        # `problem` is not in the root defaults (only numeric experiments pick one): append it
        cfg, _ = compose([*base, *runner, f"{'+' if group == 'problem' else ''}{group}={option}"])
        validate(cfg)


def test_groups_are_all_listed():
    on_disk = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
    assert on_disk == sorted(GROUPS + ROLE_GROUPS + ["hydra"])


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


@pytest.mark.parametrize("role", ROLES)
def test_registry_matches_the_role_yamls(role):
    """Every registered plugin of a role has its conf/<role>/<name>.yaml and every YAML a plugin."""
    assert sorted(plugins(role)) == options(role)


@pytest.mark.parametrize("role,name", [(r, n) for r in ROLES for n in options(r)])
def test_each_default_has_one_home(role, name):
    """A role YAML names its schema and sets no value: the dataclass is the one home of every default
    (so the two cannot drift apart)."""
    node = OmegaConf.load(CONF_DIR / role / f"{name}.yaml")
    assert list(node.keys()) == ["defaults"], f"conf/{role}/{name}.yaml sets values: move them to the dataclass"
    assert list(node.defaults) == [f"/schema/{role}/{name}@_here_", "_self_"]


def test_method_presets_are_every_plugin():
    assert options("method") == sorted(n for r in ROLES for n in plugins(r))


def test_registering_schemas_is_lazy():
    """Start-up imports schemas only: no transformers, triton, datasets or kernels."""
    code = ("import sys; from reprolab.registry import register_schemas; register_schemas(); "
            "heavy = [m for m in ('transformers', 'triton', 'datasets', 'lightning', 'wandb') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cfg_job_prints_the_resolved_config():
    out = subprocess.run([sys.executable, "run.py", "--cfg", "job", "method=sgd"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "momentum: 0.9" in out.stdout and "max_steps:" in out.stdout
