"""Plumbing shared by the optimizers in methods/ (COSMOS, Muon, SOAP, GaLore, Adam-mini).

Conventions every one of them follows (tests: tests/cosmos/test_validation.py):
- ``step(closure=None)``; the closure runs with grad enabled (Lightning always passes one).
- Gradients are read, never written: the official COSMOS mixes Nesterov momentum into ``p.grad``
  in place (cosmos.md §7); ours works on its own buffers, so grads can be logged or reused.
- Parameters whose ``.grad`` is None are skipped: no state is created, their step count does
  not advance, they do not change.
- Sparse gradients and complex parameters raise a `ValueError` naming the tensor.
- State is float32 (float64 for float64 parameters). A bf16/fp16 parameter is updated in
  float32 and rounded back to its dtype (round to nearest), so updates smaller than half its ulp
  are lost: for long low-precision training keep fp32 master weights (``hardware=gpu`` does:
  Lightning's bf16-mixed keeps fp32 parameters).
"""
from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from typing import Iterable

import torch

from reprolab import checks


def check_hparams(name: str, *, lr: float, betas: Iterable[float] | None = None, eps: float | None = None,
                  weight_decay: float | None = None) -> None:
    """Validate the Adam-style hyperparameters of optimizer ``name``; messages name the argument."""
    checks.positive(f"{name}: lr", lr)
    if betas is not None:
        checks.betas(f"{name}: betas", betas, 2)
    if eps is not None:
        checks.non_negative(f"{name}: eps", eps)
    if weight_decay is not None:
        checks.non_negative(f"{name}: weight_decay", weight_decay)


def check_newton_schulz(where: str, group: dict) -> None:
    """Validate the Newton-Schulz options shared by COSMOS and Muon: ns_steps, ns_dtype, backend."""
    from reprolab.kernels.cosmos import BACKENDS, NS_DTYPES

    steps, dtype = group["ns_steps"], group["ns_dtype"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{where}: ns_steps={steps!r} must be a positive integer (default 5).")
    if not (dtype is None or dtype in NS_DTYPES or (isinstance(dtype, torch.dtype) and dtype.is_floating_point)):
        raise ValueError(f"{where}: ns_dtype={dtype!r} must be None (auto), a float dtype or one of {list(NS_DTYPES)}.")
    if group["backend"] not in BACKENDS:
        raise ValueError(f"{where}: backend={group['backend']!r} is not one of {BACKENDS}.")


def check_param(name: str, p: torch.Tensor) -> None:
    if p.is_complex():
        raise ValueError(f"{name} does not support complex parameters (got one of shape {tuple(p.shape)}, "
                         f"dtype {p.dtype}); optimise torch.view_as_real(p) as a real tensor instead.")


LOW_PRECISION = (torch.bfloat16, torch.float16)


def grad_fp32(name: str, p: torch.Tensor) -> torch.Tensor:
    """``p.grad``, promoted to float32 if it is bf16/fp16 (else the same tensor: treat it as read-only)."""
    if p.grad.is_sparse:
        raise ValueError(f"{name} does not support sparse gradients (parameter of shape {tuple(p.shape)}); "
                         "use torch.optim.SparseAdam, or build the embedding with sparse=False.")
    return p.grad.float() if p.grad.dtype in LOW_PRECISION else p.grad


def master(p: torch.Tensor) -> torch.Tensor:
    """The tensor to update: ``p`` itself, or an fp32 copy of a bf16/fp16 ``p``."""
    return p.detach().float() if p.dtype in LOW_PRECISION else p


def write_back(p: torch.Tensor, w: torch.Tensor) -> None:
    if w is not p:
        p.copy_(w)


def adamw_(items: list[tuple], *, lr, betas, eps, weight_decay, momentum_coef=None, bias1_beta=None) -> None:
    """One torch.optim.AdamW step on every (w, g, state) of ``items``, in place (state keys ``step``,
    ``exp_avg``, ``exp_avg_sq``), with `torch._foreach` ops: one launch per op for the whole list on
    a GPU, the same per-tensor arithmetic as a loop elsewhere. Tensors at different step counts
    (one skipped a step) are stepped as separate lists.

    m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2;  w <- w (1 - lr wd);
    w <- w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    ``momentum_coef`` replaces (1 - beta1) in the momentum and ``bias1_beta`` replaces beta1 in its
    bias correction: the official COSMOS AdamW branch hard-codes 0.1 and 0.9 (cosmos.md §2.5).
    """
    beta1, beta2 = betas
    by_step: dict = {}
    for w, g, state in items:
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(w)
            state["exp_avg_sq"] = torch.zeros_like(w)
        by_step.setdefault(state["step"], []).append((w, g, state))
    for done, same in by_step.items():
        t = done + 1
        ws, gs = [w for w, _, _ in same], [g for _, g, _ in same]
        ms, vs = [st["exp_avg"] for _, _, st in same], [st["exp_avg_sq"] for _, _, st in same]
        for _, _, st in same:
            st["step"] = t
        torch._foreach_mul_(ms, beta1)
        torch._foreach_add_(ms, gs, alpha=1 - beta1 if momentum_coef is None else momentum_coef)
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, gs, gs, value=1 - beta2)
        bias1 = 1 - (beta1 if bias1_beta is None else bias1_beta) ** t
        denom = torch._foreach_sqrt(vs)
        torch._foreach_div_(denom, math.sqrt(1 - beta2**t))
        torch._foreach_add_(denom, eps)
        if weight_decay:
            torch._foreach_mul_(ws, 1 - lr * weight_decay)
        torch._foreach_addcdiv_(ws, ms, denom, value=-lr / bias1)


class KeepStateDtype:
    """Mixin for a `torch.optim.Optimizer`: ``load_state_dict`` keeps each state tensor's saved dtype.

    torch casts floating state to the parameter's dtype on load, which would turn the fp32 state
    of a bf16 parameter into bf16 after a resume; this puts the saved tensors back (moved to the
    parameter's device only).
    """

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for i, p in zip(saved_ids, params):
            for key, value in state_dict["state"].get(i, {}).items():
                if isinstance(value, torch.Tensor) and value.is_floating_point():
                    self.state[p][key] = value.to(device=p.device)


class CheckedOptimizer(KeepStateDtype, torch.optim.Optimizer, metaclass=ABCMeta):
    """The base of the optimizers in methods/: groups are validated as they are added, and `step`
    hands each group's parameters that have a gradient to `_update_group` (default: `_update`
    once per parameter).

    `_update(w, g, state, group)` gets the fp32 master weight ``w`` (updated in place, written back
    to a bf16/fp16 parameter afterwards) and the fp32 gradient ``g`` (read-only). `_check_group`
    validates the Adam-style options by default; subclasses extend it for their own.
    """

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            check_param(type(self).__name__, p)
        self._check_group(group, len(self.param_groups) - 1)

    def _check_group(self, group: dict, index: int) -> None:
        """Validate one group's options (after defaults are filled); raise naming the option."""
        check_hparams(f"{type(self).__name__} (param group {index})", lr=group["lr"], betas=group.get("betas"),
                      eps=group.get("eps"), weight_decay=group["weight_decay"])

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        name = type(self).__name__
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            items = [(master(p), grad_fp32(name, p), self.state[p]) for p in params]
            if items:
                self._update_group(items, group)
            for p, (w, _, _) in zip(params, items):
                write_back(p, w)
        return loss

    def _update_group(self, items: list[tuple], group: dict) -> None:
        """Update every (w, g, state) of one group; override to batch work across its tensors."""
        for w, g, state in items:
            self._update(w, g, state, group)

    def _update(self, w: torch.Tensor, g: torch.Tensor, state: dict, group: dict) -> None:
        """Update ``w`` (fp32, in place) from ``g`` (fp32, read-only) for one parameter."""
        raise NotImplementedError(f"{type(self).__name__} implements neither _update nor _update_group")


BATCH_ENTRIES = 2**25  # at most this many entries (k m n) per batch of same-shape matrices


def same_shape_batches(items: list, shape, tag=None, limit: int = BATCH_ENTRIES):
    """``items`` split into lists whose ``shape(item)`` (and ``tag(item)``, if given) are equal, each
    of at most ``limit`` entries in all (but at least one item), in order of first appearance. On a
    GPU one batched kernel per list replaces one launch per matrix (a LLaMA has a handful of
    distinct matrix shapes); the limit bounds the batch's temporaries."""
    by_key: dict = {}
    for item in items:
        by_key.setdefault((tuple(shape(item)), None if tag is None else tag(item)), []).append(item)
    for (dims, _), same in by_key.items():
        per = max(1, limit // math.prod(dims))
        for i in range(0, len(same), per):
            yield same[i:i + per]


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A batch (k, ...) of equal-shape tensors; a single one is viewed, not copied."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def init_packed(states: list[dict], shapes: dict, like: torch.Tensor) -> None:
    """The empty states of a batch get zeros for each ``key: shape``, allocated as one (k, *shape)
    tensor per key (each state's entry a slice), so `packed_state` views it from the start; states
    that already hold entries are left as they are."""
    states = [state for state in states if not state]
    if not states:
        return
    for key, shape in shapes.items():
        for state, zeros in zip(states, torch.zeros(len(states), *shape, dtype=like.dtype, device=like.device)):
            state[key] = zeros


def packed_state(states: list[dict], key: str) -> torch.Tensor:
    """The batch (k, ...) whose slices are ``states[i][key]``, so that batched in-place updates are
    the per-parameter state's updates. Slices of one tensor, in order, are viewed as that tensor (no
    copy: the case from the second step on); otherwise (first step of a new batch, after
    `load_state_dict`) they are stacked once and each state entry becomes its slice of the stack.
    A batch whose members change (tensors without a grad at some steps, as in a mixture of experts)
    is re-stacked when it changes, and an old stack stays allocated while any state still views
    it. A checkpoint still holds one tensor per parameter and key (views, saved with their storage)."""
    tensors = [s[key] for s in states]
    t0 = tensors[0]
    if len(tensors) == 1 and t0.is_contiguous():
        return t0.unsqueeze(0)
    step = t0.numel() * t0.element_size()
    # consecutive slices inside t0's storage: no other live storage can hold the later ones
    end = t0.storage_offset() * t0.element_size() + len(tensors) * step
    if t0.is_contiguous() and end <= t0.untyped_storage().nbytes() and all(
            t.shape == t0.shape and t.dtype == t0.dtype and t.is_contiguous()
            and t.data_ptr() == t0.data_ptr() + i * step for i, t in enumerate(tensors)):
        return t0.as_strided((len(tensors), *t0.shape), (t0.numel(), *t0.stride()), t0.storage_offset())
    batch = torch.stack(tensors)
    for s, t in zip(states, batch):
        s[key] = t
    return batch


class HybridOptimizer(CheckedOptimizer):
    """An optimizer with a matrix branch and an AdamW branch, routed per parameter group.

    Each group has the boolean option ``flag`` (``use_cosmos``, ``use_muon``): True sends its
    tensors to the matrix branch, False to AdamW. A group without it (or with None) is split in
    two by `default_route`, tensor by tensor. Groups with ``flag=False`` take their missing
    options from ``aux_defaults`` first (e.g. Muon's own Adam lr), then from ``defaults``.
    Subclasses implement `_matrix_steps` (all matrix-branch tensors of a group at once, so that
    same-shape matrices share batched kernels) and may override `_aux_steps`, `default_route` and
    `_check_group`.
    """

    flag: str = "use_matrix"

    def __init__(self, params, defaults: dict, aux_defaults: dict | None = None):
        self._aux_defaults = dict(aux_defaults or {})
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        flag = param_group.get(self.flag)
        if flag not in (None, True, False):
            raise ValueError(f"{type(self).__name__}: param group option {self.flag}={flag!r} must be true, "
                             "false or absent (route by shape).")
        if flag is None:
            params = param_group["params"]
            params = [params] if isinstance(params, torch.Tensor) else list(params)
            for route in (True, False):
                part = [p for p in params if self.default_route(p) == route]
                if part:
                    self.add_param_group({**param_group, "params": part, self.flag: route})
            return
        if flag is False:
            param_group = {**self._aux_defaults, **param_group}
        super().add_param_group(param_group)

    def default_route(self, p: torch.Tensor) -> bool:
        """Matrix branch for 2-D tensors when the group does not say."""
        return p.dim() == 2

    def _update_group(self, items, group):
        (self._matrix_steps if group[self.flag] else self._aux_steps)(items, group)

    @abstractmethod
    def _matrix_steps(self, items: list[tuple], group: dict) -> None:
        """Update every (w, g, state) of a matrix-branch group: ``w`` fp32, in place; ``g`` read-only."""

    def _aux_steps(self, items: list[tuple], group: dict) -> None:
        """The AdamW branch: every (w, g, state) of an AdamW-branch group at once."""
        adamw_(items, lr=group["lr"], betas=group["betas"], eps=group["eps"], weight_decay=group["weight_decay"])
