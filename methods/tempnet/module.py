"""The TempNet heads of arXiv:2404.04575 (../shared/papers/tempnet.md §2.3): a small network that
reads the detached output of a foundation model and predicts a temperature in [tau_min, tau_max]."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def bounded(z: torch.Tensor, tau_min: float, tau_max: float) -> torch.Tensor:
    """tau = (tau_max - tau_min) sigmoid(z) + tau_min: always in [tau_min, tau_max]."""
    return (tau_max - tau_min) * torch.sigmoid(z) + tau_min


class TempNet(nn.Module):
    """TempNet for LLMs (spec §2.3, `zhqiu/TempNet:GPT-2/megatron/model/tempnet.py`), input the logits
    ``(..., V)`` of one position, output tau ``(..., 1)``:

        x = normalize(sg[logits]);  x = Linear(V, M) -> sigmoid -> dropout -> Linear(M, M)   (M = hidden)
        w = softmax(x / exp(s));    z = last((w - 1/M) * x);    tau = (tau_max - tau_min) sigmoid(z) + tau_min

    ``last`` starts at weight 1, bias 0, so z starts as softmax-pool(x) - mean-pool(x) >= 0; ``s`` (the
    pooling's log temperature) at 0. The input is detached (the paper's stop-gradient): the LM gets no
    gradient through tau. ``shift_max``: feed ``logits - max(logits)`` (the generation branch of the root
    ``tempnet.py``; its training branch and the GPT-2/LLaMA-2 code feed the raw logits).
    The network runs in its own dtype (fp32 when trained), whatever the logits' dtype.
    """

    def __init__(self, feature_dim: int, hidden: int = 256, tau_min: float = 0.01, tau_max: float = 2.0,
                 dropout: float = 0.5, shift_max: bool = False):
        super().__init__()
        self.feature_dim, self.hidden = feature_dim, hidden
        self.tau_min, self.tau_max, self.shift_max = tau_min, tau_max, shift_max
        self.proj = nn.Sequential(nn.Linear(feature_dim, hidden), nn.Sigmoid(), nn.Dropout(dropout),
                                  nn.Linear(hidden, hidden))
        self.scaler = nn.Parameter(torch.tensor(math.log(1.0)))
        self.last = nn.Linear(hidden, 1)
        nn.init.ones_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def pooled(self, logits: torch.Tensor) -> torch.Tensor:
        """z, the pre-sigmoid output ``(..., 1)``, in few ops (it runs at every decode step): the first layer
        reads the raw logits and divides by their norm after the matmul, Linear(x / |x|) = (x W^T) / |x| + b
        (|x| clamped at F.normalize's 1e-12), one fused addcdiv; the modules are called as functions, dropout
        only in training. Equal to the formula above up to rounding (tests/tempnet/test_tempnet_head.py)."""
        x = logits.detach()
        if self.shift_max:
            x = x - x.amax(-1, keepdim=True)
        first, second = self.proj[0], self.proj[3]
        if x.dtype != first.weight.dtype:
            x = x.to(first.weight.dtype)
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min_(1e-12)
        h = torch.sigmoid(torch.addcdiv(first.bias, F.linear(x, first.weight), norm))
        if self.training:
            h = F.dropout(h, self.proj[2].p, True)
        x = F.linear(h, second.weight, second.bias)
        w = torch.softmax(x / self.scaler.exp(), dim=-1)
        return F.linear((w - 1.0 / self.hidden) * x, self.last.weight, self.last.bias)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return bounded(self.pooled(logits), self.tau_min, self.tau_max)
        return self.inference(logits)

    def folded(self) -> tuple:
        """What the inference path needs that depends on the weights alone, the pooling's temperature T = exp(s)
        folded in: W1^T, b1, (W2 / T)^T, b2 / T, T v, c (v, c: the last layer), tau_min as a tensor; rebuilt when a
        weight has changed (in-place version counters and storage of every parameter)."""
        params = (self.proj[0].weight, self.proj[0].bias, self.proj[3].weight, self.proj[3].bias, self.scaler,
                  self.last.weight, self.last.bias)
        key = tuple((p._version, p.data_ptr()) for p in params)
        cached = self.__dict__.get("_folded")
        if cached is None or cached[0] != key:
            w1, b1, w2, b2, s, v, c = (p.detach() for p in params)
            t = s.exp()
            lo = torch.tensor(self.tau_min, dtype=w1.dtype, device=w1.device)
            cached = (key, (w1.t().contiguous(), b1, (w2 / t).t().contiguous(), b2 / t, v[0] * t, c, lo))
            self.__dict__["_folded"] = cached
        return cached[1]

    def inference(self, logits: torch.Tensor) -> torch.Tensor:
        """tau without autograd (eval mode, no_grad: every decode step), in the fewest ops: Linear(x / |x|) = (x W1^T)
        / |x| + b1 (|x| clamped at F.normalize's 1e-12); softmax(x / T) with x / T one addmm of the folded weights;
        z = sum_k (w_k - 1/M) (x_k / T) (T v_k) + c one addmv; tau_min + (tau_max - tau_min) sigmoid(z) one add; the
        logits read as a (N, V) matrix: 12 aten calls. At the tiny LLaMA a decode step is itself ~150 such calls, so
        TempNet's share of a decode step is set by its call count there (benchmarks/tempnet_step.py). Equal to
        `pooled` up to rounding (tests/tempnet/test_tempnet_head.py)."""
        w1t, b1, w2t, b2, v, c, lo = self.folded()
        x = logits.reshape(-1, logits.shape[-1])
        if self.shift_max:
            x = x - x.amax(-1, keepdim=True)
        if x.dtype != w1t.dtype:
            x = x.to(w1t.dtype)
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min_(1e-12)
        x = torch.addmm(b2, torch.sigmoid(torch.addcdiv(b1, x.mm(w1t), norm)), w2t)
        w = torch.softmax(x, dim=-1).sub_(1.0 / self.hidden).mul_(x)
        tau = torch.add(lo, torch.sigmoid(torch.addmv(c, w, v)), alpha=self.tau_max - self.tau_min)
        return tau.view(*logits.shape[:-1], 1)


class TempGenerator(nn.Module):
    """TempNet for CLIP (spec §2.3, `zhqiu/TempNet:Bimodal_CL/models/losses.py` ``TempGenerator``), input a
    normalised embedding ``(B, D)``, output tau ``(B,)``, with M prototypes:

        h = dropout(sigmoid(Linear(D, D)(sg[e])));  a = h @ normalize(P)^T;  w = softmax(a / exp(s))
        z = linear_1((w - 1/M) * sigmoid(a));       tau = (tau_max - tau_min) sigmoid(z) + tau_min

    s starts at log 0.01, linear_1 at weight 1 and bias 0, the prototypes at N(0, 1) until
    `init_prototypes` (the official loop copies the first batch's embeddings of the other modality).
    """

    def __init__(self, dim: int, prototypes: int = 256, tau_min: float = 0.005, tau_max: float = 0.05,
                 dropout: float = 0.5):
        super().__init__()
        self.tau_min, self.tau_max, self.M = tau_min, tau_max, prototypes
        self.proj = nn.Linear(dim, dim)
        self.scaler = nn.Parameter(torch.tensor(math.log(0.01)))
        self.prototypes = nn.Parameter(torch.randn(prototypes, dim))
        self.linear_1 = nn.Linear(prototypes, 1)
        nn.init.ones_(self.linear_1.weight)
        nn.init.zeros_(self.linear_1.bias)
        self.dropout = nn.Dropout(dropout)

    @torch.no_grad()
    def init_prototypes(self, feats: torch.Tensor) -> None:
        """Prototypes <- the first M rows of ``feats`` (fewer rows: the first ones only)."""
        n = min(self.M, feats.shape[0])
        self.prototypes[:n].copy_(feats[:n].to(self.prototypes.dtype))

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.sigmoid(self.proj(e.detach().to(self.scaler.dtype))))
        a = h @ F.normalize(self.prototypes, dim=1).t()
        w = torch.softmax(a / self.scaler.exp(), dim=1)
        return bounded(self.linear_1((w - 1.0 / self.M) * torch.sigmoid(a)).squeeze(-1), self.tau_min, self.tau_max)


class ContrastiveTempNet(nn.Module):
    """One `TempGenerator` per modality: ``(tau_image (B,), tau_text (B,))`` of the two embeddings."""

    def __init__(self, dim: int, **kw):
        super().__init__()
        self.image = TempGenerator(dim, **kw)
        self.text = TempGenerator(dim, **kw)
        self.register_buffer("prototypes_ready", torch.tensor(False))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not bool(self.prototypes_ready):  # spec §2.3: from the other modality, once
            self.image.init_prototypes(text.detach())
            self.text.init_prototypes(image.detach())
            self.prototypes_ready.fill_(True)
        return self.image(image), self.text(text)
