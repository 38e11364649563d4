"""Where plugins are found. Nothing here imports an implementation.

A plugin is a dataclass that subclasses one role of `reprolab.roles` and registers itself with
``@schema("<role>", "<name>")``; ``conf/<role>/<name>.yaml`` names that schema in its defaults
list (``/schema/<role>/<name>@_here_``) and sets no values: the dataclass is the one home of each
default. A run fills the role *slots* (`ROLES`) it needs: ``optimizer=cosmos``, ``kv_cache=gear``.

``method=<name>`` is the one-word preset: it puts the plugin ``<name>`` (whatever its role) in the
``method`` node, and the core hands it to the runner in the slot of its role, so ``method=cosmos``
is ``optimizer=cosmos`` and ``method=gear`` is ``kv_cache=gear`` (`reprolab.slots`). The presets
are made here from the registered plugins, so there is nothing to keep in step by hand.

Schemas are small dataclasses in ``<package>/config.py`` files; `register_schemas` imports those
files (and only those) so Hydra can check every override at compose time. Role hooks import
their heavy code (transformers, triton, kernels) when called, so start-up stays cheap.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from hydra.core.config_store import ConfigStore

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# The role slots, in the order a model is assembled (see `reprolab.slots`).
ROLES = ("optimizer", "objective", "adapter", "kv_cache", "steering", "temperature", "solver")

# Packages whose sub-packages may hold a `config.py` with schemas.
_SCHEMA_PACKAGES = ("reprolab", "runners", "methods")
_SCHEMAS: dict[tuple[str, str], type] = {}
_registered = False


def schema(group: str, name: str):
    """Class decorator: register a dataclass as the schema of ``conf/<group>/<name>.yaml``.

    It is stored in Hydra's ConfigStore as ``schema/<group>/<name>`` and the class remembers the name
    (``registered_name``). For a role group the class must fill that role, and the ``method=<name>``
    preset is stored beside it.
    """

    def deco(cls: type) -> type:
        if group in ROLES:
            role = getattr(cls, "role", None)
            if role != group:
                raise TypeError(f"@schema({group!r}, {name!r}): {cls.__name__} fills the role {role!r}, not {group!r}")
            clash = [g for (g, n) in _SCHEMAS if n == name and g in ROLES and g != group]
            if clash:
                raise TypeError(f"plugin name {name!r} is taken by the {clash[0]} role: method={name} must name one plugin")
            ConfigStore.instance().store(group="method", name=name,
                                         node={"defaults": [f"/{group}/{name}@_here_", "_self_"]})
        ConfigStore.instance().store(group=f"schema/{group}", name=name, node=cls)
        _SCHEMAS[(group, name)] = cls
        cls.registered_name = name  # what `<group>=<name>` chose (not a field: the schema ignores it)
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
    """The options of a config group, e.g. ``options("optimizer") == ["adam_mini", "adamw", ...]``;
    ``options("method")`` lists every plugin of every role (the presets)."""
    if group == "method":
        return sorted(name for role in ROLES for name in plugins(role))
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def plugins(role: str) -> dict[str, type]:
    """Plugin name -> schema class for one role (lazy: no hook is run)."""
    return {name: cls for (group, name), cls in register_schemas().items() if group == role}


def role_of(name: str) -> str | None:
    """The role whose plugin is called ``name`` (None if no plugin is)."""
    return next((group for (group, n) in register_schemas() if n == name and group in ROLES), None)
