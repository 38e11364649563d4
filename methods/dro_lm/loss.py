"""The KL-DRO loss of next-token prediction with a predicted temperature (arXiv:2404.04575, eq. of
../shared/papers/tempnet.md §2.1):

    L = tau * CE(h / tau, y) + tau (rho - log K)  =  tau log((1/K) sum_k exp((h_k - h_y) / tau)) + tau rho,

the Lagrangian dual of max_{p: KL(p || 1/K) <= rho} sum_k p_k (h_k - h_y), with tau = TempNet(sg[h]).
Its gradient in h is softmax(h / tau) - e_y (tau cancels); in tau it is H(softmax(h / tau)) - (log K - rho),
whatever the label: the dual pushes the tempered prediction's entropy to log K - rho.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MASKS = ("labels", "none")


def tempered_forward(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits / tau, tau): the model's tempered logits ``(B, T, K)`` and the tau ``(B, T, 1)`` its
    temperature module (``model.temperature``, attached by `reprolab.models.assemble`) gave them."""
    taus = []
    handle = model.temperature.register_forward_hook(lambda _, __, tau: taus.append(tau))
    try:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    finally:
        handle.remove()
    return logits, taus[-1]


def dro_terms(tempered: torch.Tensor, tau: torch.Tensor, labels: torch.Tensor, rho: float,
              raw: bool = False) -> dict[str, torch.Tensor]:
    """Per-position tensors ``(N,)`` over the flattened batch: ``dro`` = tau CE(h/tau, y) + tau (rho - log K)
    (0 CE where the label is -100), ``nll`` = CE(h/tau, y), ``tau``, ``valid``; with ``raw``, ``nll_raw`` = CE(h, y)."""
    z = tempered.flatten(0, -2).float()
    t = tau.flatten().float()
    y = labels.flatten()
    ce = F.cross_entropy(z, y, ignore_index=-100, reduction="none")
    out = {"dro": t * ce + (rho - math.log(z.shape[-1])) * t, "nll": ce, "tau": t, "valid": y != -100}
    if raw:
        out["nll_raw"] = F.cross_entropy((z * t[:, None]).detach(), y, ignore_index=-100, reduction="none")
    return out


def dro_loss(terms: dict[str, torch.Tensor], mask: str = "labels") -> torch.Tensor:
    """The mean DRO loss: over the labelled positions (``mask=labels``), or over every position
    (``mask=none``, the official ``tau_cross_entropy``: ignored positions add their tau (rho - log K))."""
    return terms["dro"][terms["valid"]].mean() if mask == "labels" else terms["dro"].mean()
