"""Muon: momentum orthogonalised by Newton-Schulz, with an AdamW branch.

Keller Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (blog, 2024,
kellerjordan.github.io/posts/muon); reference code KellerJordan/Muon `SingleDeviceMuonWithAuxAdam`
(cosmos.md §3.3). For a hidden matrix W (m x n) with gradient G:

  B <- beta B + (1 - beta) G;   U = G + beta (B - G) (nesterov) or B
  O = NS5(U)  (5 quintic Newton-Schulz steps, bf16 where GEMMs run it natively, Muon's association: cosmos.md §2.6)
  W <- W (1 - lr wd) - lr s O,   s = max(1, m/n)^0.5 ("keller") or 0.2 sqrt(max(m, n)) ("moonlight",
  Liu et al., arXiv:2502.16982, which matches AdamW's update RMS).

Tensors with more than two dims are flattened to (size(0), -1). Everything routed to the AdamW
branch (``use_muon=False`` groups: embeddings, the head, gains, biases) takes an AdamW step with
its own ``adam_*`` options (official defaults lr 3e-4, betas (0.9, 0.95), eps 1e-10, wd 0).
Single-device: no torch.distributed needed. State per matrix: the momentum B (mn elements).
"""
from __future__ import annotations

import math

import torch

from reprolab.kernels.cosmos import newton_schulz5, ns_dtype_for
from methods.muon.config import SCALES
from methods.optim import (HybridOptimizer, check_hparams, check_newton_schulz, init_packed, packed_state,
                          same_shape_batches, stack)


def update_scale(rule: str, m: int, n: int) -> float:
    """Multiplier of the orthogonalised update of an m x n matrix."""
    return max(1.0, m / n) ** 0.5 if rule == "keller" else 0.2 * math.sqrt(max(m, n))


class Muon(HybridOptimizer):
    """Muon with an AdamW branch (``SingleDeviceMuonWithAuxAdam`` semantics).

    Args:
        params: tensors or groups; ``use_muon`` True/False per group, unset routes tensors with
            dim >= 2 to Muon. Keep embeddings and the head out of Muon
            (`reprolab.params.matrix_branch_groups`).
        lr, momentum, nesterov, ns_steps, weight_decay: the Muon branch (0.02, 0.95, True, 5, 0).
        scale: "keller" or "moonlight" (module docstring).
        adam_lr, adam_betas, adam_eps, adam_weight_decay: defaults of ``use_muon=False`` groups.
        ns_dtype: None or "auto" = bf16 (official) where the device runs bf16 GEMMs natively, else fp32
            (`reprolab.kernels.cosmos.ns_dtype_for`); or a dtype / "bfloat16" / "float32".
        backend: Newton-Schulz kernels: None (Triton on CUDA), "torch", "triton". Same-shape
            matrices share one batched Newton-Schulz call.
    """

    flag = "use_muon"

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
                 weight_decay: float = 0.0, scale: str = "keller", *, adam_lr: float = 3e-4, adam_betas=(0.9, 0.95),
                 adam_eps: float = 1e-10, adam_weight_decay: float = 0.0, ns_dtype: torch.dtype | str | None = None,
                 backend: str | None = None):
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps, weight_decay=weight_decay,
                        scale=scale, ns_dtype=ns_dtype, backend=backend, betas=tuple(adam_betas), eps=adam_eps)
        aux = dict(lr=adam_lr, betas=tuple(adam_betas), eps=adam_eps, weight_decay=adam_weight_decay)
        super().__init__(params, defaults, aux)

    def default_route(self, p: torch.Tensor) -> bool:
        return p.dim() >= 2

    def _check_group(self, group: dict, index: int) -> None:
        where = f"Muon (param group {index})"
        if not group["use_muon"]:
            return super()._check_group(group, index)
        check_hparams(where, lr=group["lr"], weight_decay=group["weight_decay"])
        if not 0 <= group["momentum"] < 1:
            raise ValueError(f"{where}: momentum={group['momentum']!r} must be in [0, 1) (default 0.95).")
        check_newton_schulz(where, group)
        if group["scale"] not in SCALES:
            raise ValueError(f"{where}: scale={group['scale']!r} is not one of {SCALES}.")
        for p in group["params"]:
            if p.dim() < 2:
                raise ValueError(f"{where}: use_muon=True needs tensors with dim >= 2, got shape {tuple(p.shape)}; "
                                 "put it in a group with use_muon=False (AdamW branch).")

    def _matrix_steps(self, items, group):
        # Same-shape matrices take the step as one batch (momentum packed, see `packed_state`; one
        # batched Newton-Schulz): one set of GPU launches instead of one per matrix.
        beta, lr = group["momentum"], group["lr"]
        dtype = ns_dtype_for(items[0][0], group["ns_dtype"])
        for batch in same_shape_batches(items, lambda item: item[0].shape):
            states = [st for _, _, st in batch]
            init_packed(states, {"momentum_buffer": batch[0][0].shape}, batch[0][0])
            buf = packed_state(states, "momentum_buffer")  # one copy where new and old states share a batch
            G = stack([g for _, g, _ in batch])
            buf.lerp_(G, 1 - beta)
            if group["nesterov"]:  # a stack of grads is ours to overwrite; a lone grad (a view of p.grad) is not
                U = G.lerp_(buf, beta) if len(batch) > 1 else G.lerp(buf, beta)
            else:
                U = buf
            O = newton_schulz5(U.flatten(2), group["ns_steps"], "muon", dtype, backend=group["backend"])
            ws = [w for w, _, _ in batch]
            if group["weight_decay"]:
                torch._foreach_mul_(ws, 1 - lr * group["weight_decay"])
            step = lr * update_scale(group["scale"], *O.shape[1:])
            torch._foreach_add_(ws, [o.view(w.shape) for w, o in zip(ws, O)], alpha=-step)
