"""Role slots: a run is one runner plus the plugins that fill the slots it takes.

A runner's schema declares its slots in ``slots`` (a ``{role: Slot}`` class attribute): which it
takes, which must be filled and which plugin fills an empty one. A slot is filled from its own
config node (``optimizer=cosmos``) or by the ``method=<name>`` preset, which fills the slot of
its plugin's role. `fill` checks the whole assignment once, writes the plugin a runner default
chose into the config (so ``config.yaml`` and W&B show every hyperparameter used) and returns
`Roles`: the typed plugins. Runners read ``roles.optimizer`` etc. and never validate again.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf, open_dict

from reprolab.checks import ConfigError
from reprolab.registry import ROLES, plugins, register_schemas, role_of


@dataclass(frozen=True)
class Slot:
    """How a runner takes one role: ``required`` (must end up filled), ``default`` (the plugin an
    empty slot gets; None: stays empty or, if required, is an error)."""

    required: bool = False
    default: Optional[str] = None


@dataclass
class Roles:
    """The typed plugins of one run, one field per role (None: slot empty)."""

    optimizer: Any = None
    objective: Any = None
    adapter: Any = None
    kv_cache: Any = None
    steering: Any = None
    temperature: Any = None
    solver: Any = None

    def names(self) -> dict[str, str]:
        """Role -> plugin name of the filled slots (for run.json, tags and tables)."""
        return {f.name: getattr(self, f.name).registered_name for f in fields(self) if getattr(self, f.name) is not None}


assert tuple(f.name for f in fields(Roles)) == ROLES


def _choices(role: str) -> list[str]:
    return sorted(plugins(role)) or ["(none registered yet)"]


def _where(cfg: DictConfig, role: str, typed_now: set[str]) -> Optional[str]:
    """The config node that fills ``role``: the slot's own node, or ``method`` when the preset's
    plugin has that role. When both do, the one typed on the command line (``typed_now``) wins over
    the one an experiment chose, and the other is dropped from ``cfg``; both typed (or both from
    config files) is a ConfigError."""
    own = cfg.get(role)
    preset = cfg.get("method")
    preset_role = _node_role(preset) if preset is not None else None
    if own is not None and preset_role == role and (role in typed_now) != ("method" in typed_now):
        loser = "method" if role in typed_now else role
        with open_dict(cfg):
            del cfg[loser]
        return role if loser == "method" else "method"
    if own is not None and preset_role == role:
        raise ConfigError(
            f"two choices fill the {role} slot: {role}={_node_name(own)} and method={_node_name(preset)} (a preset for "
            f"{role}={_node_name(preset)}). Keep one: drop method=... (write `~method` if an experiment sets it) or "
            f"drop {role}=...")
    if own is not None:
        return role
    return "method" if preset_role == role else None


def _node_name(node: DictConfig) -> str:
    return OmegaConf.get_type(node).registered_name


def _node_role(node: DictConfig) -> Optional[str]:
    return getattr(OmegaConf.get_type(node), "role", None)


def fill(cfg: DictConfig, slots: dict[str, Slot], runner: str, overrides=()) -> Roles:
    """Check the slot assignment of ``cfg`` against a runner's ``slots``, write chosen defaults into
    ``cfg`` and return the typed plugins (each validated by its ``__post_init__``). ``overrides``:
    the command line's, so that a slot typed there replaces a preset an experiment set (and back)."""
    from reprolab.config import typed

    typed_now = {o.lstrip("+~").split("=", 1)[0] for o in overrides}

    preset = cfg.get("method")
    if preset is not None and _node_role(preset) not in slots:
        role = _node_role(preset)
        raise ConfigError(
            f"method={_node_name(preset)} fills the {role} slot, and runner={runner} has no {role} slot (it takes: "
            f"{', '.join(slots)}). Pick a runner that takes one, or a method of one of those roles.")
    roles, errors = Roles(), []
    for role in ROLES:
        where = _where(cfg, role, typed_now)
        if role not in slots:
            if where is not None:
                errors.append(f"{role}={_node_name(cfg[where])}: runner={runner} has no {role} slot (it takes: "
                              f"{', '.join(slots)}). Remove it, or pick a runner that takes one.")
            continue
        slot = slots[role]
        if where is None and slot.default is not None:
            with open_dict(cfg):
                cfg[role] = OmegaConf.structured(plugins(role)[slot.default])
            where = role
        if where is None:
            if slot.required:
                errors.append(f"runner={runner} needs a {role}: pick one with {role}=<name> (one of "
                              f"{', '.join(_choices(role))}).")
            continue
        try:
            setattr(roles, role, typed(cfg[where]))
        except ConfigError as e:
            errors.append(str(e).replace("method.", f"{where}.") if where != "method" else str(e))
        except Exception as e:  # OmegaConf validation errors carry the full key already
            errors.append(f"{where}: {e}")
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    return roles


def misplaced(override: str) -> Optional[str]:
    """A message for ``<slot>=<plugin>`` naming a plugin of another role (``optimizer=gear``), else None."""
    key, _, value = override.lstrip("+").partition("=")
    if key not in ROLES or not value or "," in value or value in plugins(key) or value == "null":
        return None
    role = role_of(value)
    if role is None:
        return None
    return (f"{key}={value}: {value} fills the {role} slot, not the {key} one (the {key} plugins: "
            f"{', '.join(_choices(key))}). Write {role}={value} (or method={value}).")


def check_data_kind(roles: Roles, data, data_choice: str) -> None:
    """The objective consumes the batches the data yields (``tokens``, ``preference``, ...)."""
    objective = roles.objective
    if objective is None or data is None or type(data).kind == objective.data_kind:
        return
    fits = sorted(n for (g, n), cls in register_schemas().items() if g == "data" and getattr(cls, "kind", None) == objective.data_kind)
    raise ConfigError(
        f"objective={objective.registered_name} trains on {objective.data_kind} batches, and data={data_choice} yields "
        f"{type(data).kind} batches: pick data of kind {objective.data_kind} ({', '.join(fits) or 'none registered yet'}), "
        f"or an objective for {type(data).kind} batches.")
