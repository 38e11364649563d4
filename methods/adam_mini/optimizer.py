"""Adam-mini: Adam with one second moment per parameter block instead of per entry.

Zhang, Chen, Li, Ding, Chen, Kingma, Ye, Luo, Sun, "Adam-mini: Use Fewer Learning Rates To Gain
More", arXiv:2406.16793. Reference code zyushun/Adam-mini `adam_mini.py` v1.1.1; cosmos.md §3.5.

The partition is by parameter name (the reference's rules, first match wins):
  - ``bias``: one v per entry (plain Adam);
  - query/key weights (``q_proj``, ``k_proj``, ``wq``, ``wk``): one v per attention head, the tensor
    viewed as (heads, dim * dim / n_heads) (so a GQA key with n_kv_heads heads gets n_kv_heads);
  - embeddings and output head (``embed``, ``embd``, ``wte``, ``lm_head``, ``output``), value
    (``v_proj``, ``wv``), attention output (``o_proj``, ``wo``) and MLP weights (``mlp``,
    ``feed_forward``): one v per row;
  - anything else (norm gains, ...): one v for the whole tensor.
With g viewed as (blocks, block size): v_b <- beta2 v_b + (1 - beta2) mean_j g_bj^2, and
  m <- beta1 m + (1 - beta1) g;  W <- W (1 - lr wd);  W <- W - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
with v broadcast over each block; wd = 0 for names containing norm, ln_ or bias.
State per m x n row-wise matrix: m (mn) + v (m) elements.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from methods.optim import CheckedOptimizer

ELEMENT, HEAD, ROW, TENSOR = "element", "head", "row", "tensor"
HEAD_NAMES = ("q_proj.weight", "k_proj.weight", "wq.weight", "wk.weight")
ROW_NAMES = ("embed", "embd", "wte", "lm_head", "output.weight", "v_proj.weight", "wv.weight", "o_proj.weight",
             "wo.weight", "mlp", "feed_forward")
NO_DECAY_NAMES = ("norm", "ln_", "ln_f", "bias")


def block_kind(name: str, p: torch.Tensor) -> str:
    """How Adam-mini partitions the tensor ``name`` into blocks that share one v."""
    if "bias" in name:
        return ELEMENT
    if any(k in name for k in HEAD_NAMES):
        return HEAD
    if p.dim() >= 2 and any(k in name for k in ROW_NAMES):
        return ROW
    return TENSOR


class AdamMini(CheckedOptimizer):
    """Adam-mini (arXiv:2406.16793); the update and the partition are in the module docstring.

    Args:
        named_parameters: ``model.named_parameters()`` (names decide the partition).
        lr, betas, eps, weight_decay: as Adam (reference defaults 1e-3, (0.9, 0.999), 1e-8, 0).
        dim, n_heads: the model's hidden size and query head count; needed when there are
            query/key weights (a GQA key's head count follows from its shape).
    """

    def __init__(self, named_parameters: Iterable[tuple[str, nn.Parameter]], lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *, dim: int | None = None, n_heads: int | None = None):
        groups = []
        for name, p in named_parameters:
            if not p.requires_grad:
                continue
            kind = block_kind(name, p)
            blocks = {ELEMENT: p.numel(), ROW: p.shape[0] if p.dim() else 1, TENSOR: 1}.get(kind)
            if kind == HEAD:
                if not dim or not n_heads:
                    raise ValueError(f"AdamMini: {name} is a query/key weight, which needs dim= and n_heads= (the "
                                     f"model's hidden size and head count); got dim={dim}, n_heads={n_heads}.")
                head_numel = dim * dim // n_heads
                if dim * dim % n_heads or p.numel() % head_numel:
                    raise ValueError(f"AdamMini: {name} of shape {tuple(p.shape)} does not split into heads of "
                                     f"dim*dim/n_heads = {dim}*{dim}/{n_heads} entries; check dim and n_heads.")
                blocks = p.numel() // head_numel
            decay = 0.0 if any(k in name for k in NO_DECAY_NAMES) else weight_decay
            groups.append({"params": [p], "name": name, "blocks": blocks, "weight_decay": decay})
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(groups, defaults)

    def _update(self, w, g, state, group):
        beta1, beta2 = group["betas"]
        g = g.reshape(group["blocks"], -1)
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(g)
            state["exp_avg_sq"] = torch.zeros(group["blocks"], 1, dtype=g.dtype, device=g.device)
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).add_(g.square().mean(dim=1, keepdim=True), alpha=1 - beta2)
        if group["weight_decay"]:
            w.mul_(1 - group["lr"] * group["weight_decay"])
        denom = v.sqrt().div_(math.sqrt(1 - beta2**t)).add_(group["eps"])
        w.view(group["blocks"], -1).addcdiv_(m, denom, value=-group["lr"] / (1 - beta1**t))
