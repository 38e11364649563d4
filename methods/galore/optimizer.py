"""GaLore: Adam on a low-rank projection of the gradient, with a periodic SVD projector.

Zhao, Zhang, Chen, Wang, Anandkumar, Tian, "GaLore: Memory-Efficient LLM Training by Gradient
Low-Rank Projection", arXiv:2403.03507. Reference code jiaweizzhao/GaLore
(`galore_torch/adamw.py`, `galore_projector.py`, proj_type "std"); cosmos.md §3.4.

Groups with a ``rank`` are projected. For W (m x n) with gradient G, every ``update_proj_gap``
steps (counted before the increment, so at step 0 too) the projector is recomputed from the
fp32 SVD G = U S V^T:
  m >= n: P = V^T[:r] (r x n),  G~ = G P^T (m x r),  back(N) = N P
  m <  n: P = U[:, :r] (m x r), G~ = P^T G (r x n),  back(N) = P N
Adam runs on G~ (moments are neither reset nor rotated when P changes), and
  W <- W - lr sqrt(1 - beta2^t) / (1 - beta1^t) * scale * back(m / (sqrt(v) + eps));  W <- W - lr wd W
Groups without ``rank`` take the same step unprojected: GaLore's AdamW (HF transformers' old
AdamW: eps added to sqrt(v) before the bias correction, weight decay after the step).

State per projected m x n matrix (m >= n): m, v (m x r each) + P (r x n) = 2mr + nr elements.
A rank above min(m, n) is used as min(m, n) (with a warning at construction), as in the
reference, whose SVD slices simply return all min(m, n) vectors.
"""
from __future__ import annotations

import warnings

import torch

from methods.optim import CheckedOptimizer


def svd_projector(g: torch.Tensor, rank: int) -> torch.Tensor:
    """GaLore's "std" projector of gradient g (fp32 or fp64): (r, n) right vectors if m >= n, else (m, r) left."""
    U, _, Vh = torch.linalg.svd(g, full_matrices=False)
    return Vh[:rank].contiguous() if g.shape[0] >= g.shape[1] else U[:, :rank].contiguous()


def project(g: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    return g @ P.T if g.shape[0] >= g.shape[1] else P.T @ g


def project_back(x: torch.Tensor, P: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return x @ P if shape[0] >= shape[1] else P @ x


class GaLoreAdamW(CheckedOptimizer):
    """GaLore's AdamW (arXiv:2403.03507); the update is in the module docstring.

    Args: lr (1e-3), betas ((0.9, 0.999)), eps (1e-6), weight_decay (0), correct_bias (True): the
    reference's HF-AdamW defaults. Group options for projected tensors: ``rank`` (None = not
    projected), ``update_proj_gap`` (200), ``scale`` (0.25).
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0,
                 correct_bias: bool = True):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, correct_bias=correct_bias,
                        rank=None, update_proj_gap=200, scale=0.25)
        super().__init__(params, defaults)

    def _check_group(self, group: dict, index: int) -> None:
        super()._check_group(group, index)
        where = f"GaLoreAdamW (param group {index})"
        rank = group["rank"]
        if rank is None:
            return
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"{where}: rank={rank!r} must be a positive integer, or None for no projection.")
        if not (isinstance(group["update_proj_gap"], int) and group["update_proj_gap"] >= 1):
            raise ValueError(f"{where}: update_proj_gap={group['update_proj_gap']!r} must be a positive integer.")
        if not group["scale"] > 0:
            raise ValueError(f"{where}: scale={group['scale']!r} must be > 0 (GaLore: 0.25).")
        for p in group["params"]:
            if p.dim() != 2:
                raise ValueError(f"{where}: GaLore projects 2-D tensors only, got shape {tuple(p.shape)}; put it in "
                                 "a group without rank.")
        small = sorted({tuple(p.shape) for p in group["params"] if rank > min(p.shape)})
        if small:
            warnings.warn(f"{where}: rank={rank} is larger than min(m, n) for parameters of shape {small}; they are "
                          "projected at rank min(m, n), i.e. full-rank Adam in a rotated basis (the reference "
                          "truncates the same way). Lower rank to project them.", stacklevel=5)

    def _update(self, w, g, state, group):
        beta1, beta2 = group["betas"]
        rank = group["rank"]
        if not state:
            state["step"] = 0
        if rank is not None:
            if state["step"] % group["update_proj_gap"] == 0:
                state["projector"] = svd_projector(g, rank)
            g = project(g, state["projector"])
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(g)
            state["exp_avg_sq"] = torch.zeros_like(g)
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        step_size = group["lr"]
        if group["correct_bias"]:
            step_size *= (1 - beta2**t) ** 0.5 / (1 - beta1**t)
        update = m / v.sqrt().add_(group["eps"])
        if rank is not None:
            update = project_back(update, state["projector"], w.shape) * group["scale"]
        w.add_(update, alpha=-step_size)
        if group["weight_decay"]:
            w.add_(w, alpha=-group["lr"] * group["weight_decay"])
