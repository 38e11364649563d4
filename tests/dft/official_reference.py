"""An independent re-implementation of the official DFT loss (PenGuln/DFT scripts/dft_trainer.py,
`DFTTrainer.dft_loss` and `dft_loss_ref_free`) written from its description in ../shared/papers/dft.md
§2.3, §2.5, §2.9: per-slot lists of log-probs (slot j = the j-th negative of every prompt), the diff per
slot, the mini-batch estimate as b + log mean exp(d - b), the moving average's logaddexp computed as
max(a, b) - logsigmoid(|a - b|), weights exp(d - u) detached, DFT2's lengths with + 1e-8. It keeps its own
u table (a plain tensor indexed by ids), as the trainer's ``self.u``. Used only by tests/dft.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class OfficialDFT:
    def __init__(self, n: int, tau: float, gamma: float, ref_free: bool, u_init: float = 0.0):
        self.u = torch.full((n,), u_init, dtype=torch.float64)
        self.u_mask = torch.zeros(n, dtype=torch.float64)
        self.tau, self.gamma, self.ref_free = tau, gamma, ref_free

    def loss(self, chosen_logps, generated_logps: list, reference_generated_logps: list, ids,
             chosen_size=None, generated_sizes=None):
        if self.ref_free:
            chosen_logps = chosen_logps / (chosen_size + 1e-8)
            generated_logps = [g / (s + 1e-8) for g, s in zip(generated_logps, generated_sizes)]
            diffs = [g / self.tau for g in generated_logps]
        else:
            diffs = [g / self.tau - r for g, r in zip(generated_logps, reference_generated_logps)]
        diff = torch.stack(diffs, dim=1).detach()                       # [B, m]
        b = diff.max(dim=1, keepdim=True).values
        log_ghat = (b + torch.log(torch.exp(diff - b).mean(dim=1, keepdim=True))).squeeze(1)
        old = self.u[ids].to(diff.dtype)
        if self.gamma == 1:
            new = math.log(self.gamma) + log_ghat
        else:
            a_, b_ = math.log(1 - self.gamma) + old, math.log(self.gamma) + log_ghat
            new = torch.maximum(a_, b_) - F.logsigmoid(torch.abs(a_ - b_))
        self.u[ids] = new.detach().to(self.u.dtype)
        self.u_mask[ids] = 1
        losses = -chosen_logps
        for j, g in enumerate(generated_logps):
            w = torch.exp(diff[:, j] - new).detach()
            losses = losses + w * g / len(generated_logps)
        return losses.mean()
