"""Config helpers: resolvers, typed conversion of schema-backed nodes, early validation."""
from __future__ import annotations

import hashlib
import re

from omegaconf import DictConfig, OmegaConf

from reprolab.checks import ConfigError
from reprolab.registry import ROOT

# The nodes whose schema is a plugin or a typed section; validated before any work starts.
TYPED_NODES = ("runner", "model", "data", "method", "problem")  # problem: numeric experiments only


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


def validate(cfg: DictConfig) -> dict:
    """Convert every typed node once, so a bad value fails before a model or dataset is built.

    Returns ``{node: object}``; raises `ConfigError` naming every bad key at once.
    """
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
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    return objs
