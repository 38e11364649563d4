"""Config helpers: resolvers, typed conversion of schema-backed nodes, early validation."""
from __future__ import annotations

import hashlib
import re

from omegaconf import DictConfig, OmegaConf

from reprolab.checks import ConfigError
from reprolab.registry import ROOT

# The typed sections validated before any work starts; the role slots are checked by `reprolab.slots`.
TYPED_NODES = ("runner", "model", "data", "problem")  # problem: numeric experiments only


def _run_key(override_dirname: str) -> str:
    """Folder name of a run from its overrides: readable, filesystem-safe, bounded in length."""
    key = re.sub(r"[^A-Za-z0-9=,._+\-]", "_", override_dirname) or "default"
    if len(key) > 200:  # file names stop at 255 bytes
        key = key[:180] + "-" + hashlib.sha1(key.encode()).hexdigest()[:10]
    return key


def register_resolvers() -> None:
    """``${run_key:...}`` and ``${repo:}`` (the checkout's root). Safe to call twice."""
    if not OmegaConf.has_resolver("run_key"):
        OmegaConf.register_new_resolver("run_key", _run_key)
    if not OmegaConf.has_resolver("repo"):
        OmegaConf.register_new_resolver("repo", lambda: str(ROOT))


def typed(node: DictConfig):
    """The plugin / typed object behind a schema-backed node (runs its ``__post_init__`` checks)."""
    return OmegaConf.to_object(node)


SEED_MAX = 2**32 - 1  # Lightning's seed_everything and numpy's legacy seeding take 32-bit seeds


def cross_checks(cfg: DictConfig, objs: dict) -> list[str]:
    """What no single schema can check: the untyped root keys of conf/config.yaml (``seed``,
    ``resume``, ``cpu_threads``) and sizes across typed nodes (``data.seq_len`` against the model's
    positions). ``objs``: the typed nodes that converted. Returns the errors, one line each."""
    from reprolab.rundir import RESUME_POLICIES

    def whole(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    errors = []
    seed = cfg.get("seed", 0)
    if not (whole(seed) and 0 <= seed <= SEED_MAX):
        errors.append(f"seed={seed!r} is not a whole number in [0, {SEED_MAX}]: e.g. seed=3, or a sweep -m seed=0,1,2.")
    resume = cfg.get("resume", "auto")
    if resume not in RESUME_POLICIES:
        errors.append(f"resume={resume!r} is not one of {list(RESUME_POLICIES)} (auto: continue an unfinished run "
                      "and report a finished one; never: refuse an existing run folder; must: insist on continuing).")
    threads = cfg.get("cpu_threads")
    if threads is not None and not (whole(threads) and threads >= 1):
        errors.append(f"cpu_threads={threads!r} must be a whole number >= 1, or null for torch's default.")
    positions = getattr(objs.get("model"), "max_position_embeddings", None)
    seq_len = getattr(objs.get("data"), "seq_len", None)
    key = f"data.{getattr(objs.get('data'), 'seq_len_key', 'seq_len')}"  # the field that sets it (data.max_length ...)
    if positions and seq_len and seq_len > positions:
        errors.append(f"{key}={seq_len} is longer than model.max_position_embeddings={positions}, the positions "
                      f"the model has: use {key}={positions} or less, or (a model built from config, not "
                      f"pretrained) model.max_position_embeddings={seq_len}.")
    return errors


def validate(cfg: DictConfig, overrides=()) -> dict:
    """Convert every typed node once, so a bad value fails before a model or dataset is built.

    Returns ``{node: object}`` with ``"roles"``: the runner's slots filled (`reprolab.slots.fill`,
    which also writes a default it chose into ``cfg``); raises `ConfigError` naming every bad key
    at once. ``overrides``: the command line's (a slot typed there replaces the experiment's preset).
    `reprolab.app` calls it once and hands the result to the runner.
    """
    from reprolab.slots import check_data_kind, fill

    objs, errors = {}, []
    for key in TYPED_NODES:
        node = cfg.get(key)
        if node is None:
            continue
        try:
            objs[key] = typed(node)
        except ConfigError as e:
            errors.append(str(e))
        except Exception as e:  # OmegaConf validation errors carry the full key already
            errors.append(f"{key}: {e}")
    errors += cross_checks(cfg, objs)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    runner = objs["runner"]
    objs["roles"] = fill(cfg, type(runner).slots, type(runner).registered_name, overrides)
    if hasattr(runner, "check_roles"):  # what a runner asks of its filled slots beyond each one's own checks
        runner.check_roles(objs["roles"])
    check_data_kind(objs["roles"], objs.get("data"), type(objs["data"]).registered_name if "data" in objs else "")
    return objs
