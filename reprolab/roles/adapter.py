from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Optional

from reprolab import checks
from reprolab.roles.base import Method

if TYPE_CHECKING:
    import torch


@dataclass
class AdapterMethod(Method, ABC):
    """Role: a parameter-efficient adapter (LoRA and its family) put into a built model.

    The hooks, in the order a training run calls them:

    - ``wrap(model)``: checks the module patterns, injects the adapter (`inject`) and returns the
      model, still a plain `transformers` model (same class, same ``forward`` / ``generate``).
      Only the adapter's parameters train unless ``train_base`` is true.
    - ``regularizer(model)``: a loss term the training loop adds to the objective, or None.
    - ``on_before_train_step(model)``: once per optimizer step, after the backward pass (gradients
      accumulated) and before ``optimizer.step()``: the gradients and the pre-step weights are there.
    - ``on_train_step(model, step, max_steps)``: once per optimizer step, after
      ``optimizer.step()`` and before ``zero_grad()`` (the gradients are still there); ``step``
      counts the optimizer steps already completed before this one (0 at the first), ``max_steps``
      is the run's total.
    - ``adapter_state_dict(model)`` / ``load_adapter_state_dict(model, state)``: the adapter's
      tensors alone (what a checkpoint of the adapter holds), and putting them back into a model
      wrapped the same way.
    - ``train_state_dict(model)`` / ``load_train_state_dict(model, state)``: what the adapter's training
      keeps besides its tensors (RoseLoRA's importance EMAs); saved in the run's checkpoints so a resume
      continues it.
    - ``merge(model)``: a plain model with the adapter folded into the base weights (in place).

    Fields every adapter has:
    target_modules: module-name patterns; a pattern matches a module whose full name equals it or
      ends with ``.<pattern>`` (peft's rule for a list), e.g. ``q_proj`` matches every layer's
      ``self_attn.q_proj``. Default: W_q and W_v, the matrices the LoRA paper adapts (Hu et al.,
      "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685, §7.1), which RoseLoRA
      and its baselines keep (../shared/papers/roselora.md §2.6).
    train_base: false (default): the base model is frozen and only the adapter trains (the LoRA
      paper's setting); true: the base weights train too.
    """

    role: ClassVar[str] = "adapter"

    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    train_base: bool = False

    def __post_init__(self):
        if not self.target_modules or not all(isinstance(p, str) and p for p in self.target_modules):
            raise checks.ConfigError(
                f"adapter.target_modules={list(self.target_modules)!r} must be a non-empty list of module-name "
                "patterns, e.g. [q_proj, v_proj].")

    # ---- hooks -------------------------------------------------------------------------------
    def wrap(self, model: "torch.nn.Module") -> "torch.nn.Module":
        """Inject the adapter into the modules ``target_modules`` names; return the model."""
        self.check_targets(model)
        model = self.inject(model)
        if self.train_base:
            adapter = set(self.adapter_state_dict(model))
            for name, p in model.named_parameters():
                if name not in adapter:
                    p.requires_grad_(True)
        return model

    @abstractmethod
    def inject(self, model: "torch.nn.Module") -> "torch.nn.Module":
        """Put the adapter into the matched modules, with only its parameters trainable."""

    @abstractmethod
    def merge(self, model: "torch.nn.Module") -> "torch.nn.Module":
        """Fold the adapter into the base weights (in place); return the plain model without adapter layers."""

    @abstractmethod
    def adapter_state_dict(self, model: "torch.nn.Module") -> dict[str, "torch.Tensor"]:
        """The adapter's tensors alone, keyed as in ``model.state_dict()`` (they share its storage)."""

    def load_adapter_state_dict(self, model: "torch.nn.Module", state: dict[str, "torch.Tensor"]) -> None:
        """Copy ``state`` (from `adapter_state_dict`) into a model wrapped by this adapter.

        Raises `UserError` naming the missing, unexpected and mis-shaped tensors when ``state`` was
        saved for another base model or another adapter config.
        """
        import torch

        own = self.adapter_state_dict(model)
        missing = sorted(own.keys() - state.keys())
        unexpected = sorted(state.keys() - own.keys())
        shapes = sorted(f"{k}: saved {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
                        for k in own.keys() & state.keys() if state[k].shape != own[k].shape)
        if missing or unexpected or shapes:
            def few(items):
                return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

            problems = [f"{label} ({len(items)}): {few(items)}" for label, items in
                        (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)) if items]
            raise checks.UserError(
                "the adapter state does not fit this model: " + "; ".join(problems) + ". Load it into the same "
                "base model wrapped with the same adapter config (adapter.target_modules, rank) that saved it.")
        with torch.no_grad():
            for k, t in own.items():
                t.copy_(state[k])

    def base_fingerprint(self, model: "torch.nn.Module") -> dict[str, list[float]]:
        """Per adapted layer of a wrapped model, (sum, sum of squares) of its frozen base weight in float64: what
        `load_adapter_file` compares to refuse an adapter saved for another base model of the same shapes."""
        import torch

        return {k: [float(v.double().sum()), float(v.double().square().sum())]
                for k, v in model.state_dict().items() if k.endswith(".base_layer.weight")}

    def load_adapter_file(self, model: "torch.nn.Module", saved: dict) -> None:
        """Load what the lm runner's ``adapter.pt`` holds (``adapter``, ``hparams``, ``state_dict``, ``base``) into
        ``model`` wrapped by this adapter; refuses a file of another adapter or saved for another base model."""
        import math

        if saved.get("adapter") != self.registered_name:
            raise checks.UserError(f"this adapter file holds a {saved.get('adapter')!r} adapter, not "
                                   f"{self.registered_name!r}: load it with adapter={saved.get('adapter')}.")
        ours, theirs = self.base_fingerprint(model), saved.get("base") or {}
        differ = sorted(k for k in ours.keys() & theirs.keys()
                        if not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(ours[k], theirs[k])))
        if differ:
            raise checks.UserError(
                f"this adapter was saved for another base model: the base weights of {len(differ)} adapted layers "
                f"differ ({', '.join(differ[:3])}{', ...' if len(differ) > 3 else ''}). Load it into the model it was "
                "trained on (the run's runner.init_from / model).")
        self.load_adapter_state_dict(model, saved["state_dict"])

    def regularizer(self, model: "torch.nn.Module") -> Optional["torch.Tensor"]:
        """A scalar the training loop adds to its loss (e.g. AdaLoRA's orthogonality penalty); None: nothing."""
        return None

    def on_train_step(self, model: "torch.nn.Module", step: int, max_steps: int) -> None:
        """Per optimizer step, gradients still in place (e.g. AdaLoRA's rank allocation). Default: nothing."""

    def on_before_train_step(self, model: "torch.nn.Module") -> None:
        """Per optimizer step, before ``optimizer.step()`` (e.g. RoseLoRA's importance). Default: nothing."""

    def train_state_dict(self, model: "torch.nn.Module") -> dict:
        """Training state kept outside the model's tensors, for checkpoints. Default: none."""
        return {}

    def load_train_state_dict(self, model: "torch.nn.Module", state: dict) -> None:
        """Put back what `train_state_dict` gave. Default: nothing to restore."""

    # ---- helpers -----------------------------------------------------------------------------
    def check_targets(self, model: "torch.nn.Module") -> list[str]:
        """Names of the modules ``target_modules`` matches; `ConfigError` when a pattern matches nothing
        or matches a module that is not a linear layer."""
        names = [name for name, _ in model.named_modules() if name]
        linear = {name for name, mod in model.named_modules() if _is_linear(mod)}
        unmatched = [p for p in self.target_modules if not any(matches(n, p) for n in names)]
        if unmatched:
            raise checks.ConfigError(
                f"adapter.target_modules={list(self.target_modules)!r}: {unmatched!r} match no module of "
                f"{type(model).__name__}. Its linear modules are (by last name): {_last_names(linear)}; set "
                "adapter.target_modules to some of them.")
        matched = [n for n in names if any(matches(n, p) for p in self.target_modules)]
        not_linear = [n for n in matched if n not in linear]
        if not_linear:
            raise checks.ConfigError(
                f"adapter.target_modules={list(self.target_modules)!r} matches modules that are not linear layers "
                f"({', '.join(not_linear[:5])}); an adapter goes on linear layers: {_last_names(linear)}.")
        return matched


def matches(module_name: str, pattern: str) -> bool:
    """peft's rule for a list of target modules: the full name, or its last dotted components."""
    return module_name == pattern or module_name.endswith("." + pattern)


def _is_linear(module) -> bool:
    from torch import nn

    # transformers' Conv1D (GPT-2) is a linear layer with a transposed weight; named, not imported
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def _last_names(names) -> str:
    return ", ".join(sorted({n.rsplit(".", 1)[-1] for n in names})) or "(none)"
