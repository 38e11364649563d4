"""Where plugins are found. Nothing here imports an implementation.

Registration is the YAML: ``conf/<group>/<name>.yaml`` names its typed schema in its defaults list
(``/schema/<group>/<name>@_here_``), and the schema class says which code runs. Schemas are small
dataclasses in ``<package>/config.py`` files; `register_schemas` imports those files (and only
those) so Hydra can check every override at compose time. Role hooks import their heavy code
(transformers, triton, kernels) when called, so start-up stays cheap as papers are added.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from hydra.core.config_store import ConfigStore

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# Packages whose sub-packages may hold a `config.py` with schemas.
_SCHEMA_PACKAGES = ("reprolab", "runners", "methods")
_SCHEMAS: dict[tuple[str, str], type] = {}
_registered = False


def schema(group: str, name: str):
    """Class decorator: register a dataclass as the schema of ``conf/<group>/<name>.yaml``.

    It is stored in Hydra's ConfigStore as ``schema/<group>/<name>``.
    """

    def deco(cls: type) -> type:
        ConfigStore.instance().store(group=f"schema/{group}", name=name, node=cls)
        _SCHEMAS[(group, name)] = cls
        return cls

    return deco


def register_schemas() -> dict[tuple[str, str], type]:
    """Import every ``config.py`` under the schema packages (idempotent); return the schemas."""
    global _registered
    if not _registered:
        for pkg_name in _SCHEMA_PACKAGES:
            pkg = importlib.import_module(pkg_name)
            for mod in pkgutil.iter_modules(pkg.__path__):
                if mod.ispkg and (Path(pkg.__path__[0]) / mod.name / "config.py").exists():
                    importlib.import_module(f"{pkg_name}.{mod.name}.config")
        _registered = True
    return dict(_SCHEMAS)


def options(group: str) -> list[str]:
    """The YAML options of a config group, e.g. ``options("method") == ["adamw", "sgd", ...]``."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def methods() -> dict[str, type]:
    """Method name -> schema class, for every registered method schema (lazy: no hook is run)."""
    return {name: cls for (group, name), cls in register_schemas().items() if group == "method"}
