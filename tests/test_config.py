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
          "experiment", "problem",
          "r3m_grid_method"]  # the R3M grid's rows as presets, so experiments/r3m/run_grid.sh is one multirun
ROLE_GROUPS = [r for r in ROLES if (CONF_DIR / r).is_dir()]
# Groups not in the root defaults, appended (+group=option) to what they need: numeric experiments pick a problem;
# the R3M grid's method presets go with an r3m_grid experiment.
APPENDED = {"problem": [], "r3m_grid_method": ["experiment=r3m_grid/clean"]}
RUNNER_NEEDS = {"generate": ["kv_cache=fp16"], "numeric": ["solver=nag_mf", "+problem=matrix_factorization"]}


def _data_kind(option: str) -> str:
    """The batches ``data=<option>`` yields (the kind of the schema its YAML names, through other data YAMLs)."""
    ref = next(str(d) for d in OmegaConf.load(CONF_DIR / "data" / f"{option}.yaml").defaults if str(d) != "_self_")
    name = ref.split("@")[0]
    return plugins("data")[name.split("/")[-1]].kind if name.startswith("/schema/") else _data_kind(name)


def _fits(group: str, option: str) -> list[str] | None:
    """The other choices an option needs to validate: a runner that takes its slot, data of an objective's
    kind, an objective for data of another kind. None: no runner takes the slot yet (it is composed only)."""
    role = role_of(option) if group == "method" else group
    if group == "runner":
        return RUNNER_NEEDS.get(option, [])
    if group == "data":
        kind = _data_kind(option)
        return [f"objective={next(n for n, c in sorted(plugins('objective').items()) if c().data_kind == kind and not c.needs_temperature)}"]
    if role == "objective":
        kind = plugins("objective")[option]().data_kind  # may depend on the plugin's fields
        tau = ["temperature=global_tau"] if plugins("objective")[option].needs_temperature else []
        return [f"data={next(n for n in options('data') if _data_kind(n) == kind)}", *tau]
    if role == "kv_cache":
        return ["runner=generate"]
    if role == "solver":
        return ["runner=numeric", "+problem=matrix_factorization"]
    if role == "steering":
        return None
    return []


@pytest.mark.parametrize("group", GROUPS + ROLE_GROUPS + ["method"])
def test_every_option_composes_and_validates(compose, group):
    assert options(group), f"conf/{group}/ is empty"
    # Without the default experiment (quickstart sets lm-runner and optimizer keys such as method.lr).
    base = [] if group in ("experiment", *APPENDED) else ["~experiment"]
    for option in options(group):
        needs = APPENDED[group] if group in APPENDED else [] if group == "experiment" else _fits(group, option)
        cfg, _ = compose([*base, *(needs or []), f"{'+' if group in APPENDED else ''}{group}={option}"])
        if needs is None:  # a slot no runner takes yet (steering: the attention hook is library-level)
            typed(cfg[group])
        else:
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


@pytest.mark.parametrize("group,name", [(g, n) for g in (*ROLES, "runner") for n in options(g)])
def test_each_default_has_one_home(group, name):
    """A plugin's or a runner's YAML names its schema and sets no value: the dataclass is the one home
    of every default (so the two cannot drift apart)."""
    node = OmegaConf.load(CONF_DIR / group / f"{name}.yaml")
    assert list(node.keys()) == ["defaults"], f"conf/{group}/{name}.yaml sets values: move them to the dataclass"
    subgroups = [d for d in node.defaults if not isinstance(d, str)]  # e.g. the generate runner's default task
    assert [d for d in node.defaults if isinstance(d, str)] == [f"/schema/{group}/{name}@_here_", "_self_"], subgroups


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
