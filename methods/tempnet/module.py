"""The TempNet heads of arXiv:2404.04575 (../shared/papers/tempnet.md §2.3): a small network that
reads the detached output of a foundation model and predicts a temperature in [tau_min, tau_max]."""
from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _nn_module

from methods.tempnet.compiled import compiled_runner

_VERSION = operator.attrgetter("_version")


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
                 dropout: float = 0.5, shift_max: bool = False, compiled: bool | None = None):
        super().__init__()
        self.compiled = compiled
        self.feature_dim, self.hidden = feature_dim, hidden
        self.tau_min, self.tau_max, self.shift_max = tau_min, tau_max, shift_max
        self.proj = nn.Sequential(nn.Linear(feature_dim, hidden), nn.Sigmoid(), nn.Dropout(dropout),
                                  nn.Linear(hidden, hidden))
        self.scaler = nn.Parameter(torch.tensor(math.log(1.0)))
        self.last = nn.Linear(hidden, 1)
        nn.init.ones_(self.last.weight)
        nn.init.zeros_(self.last.bias)
        self.register_load_state_dict_post_hook(_drop_folded)

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

    def _params(self) -> tuple:
        """W1, b1, W2, b2, s, v, c (the Parameter objects)."""
        return (self.proj[0].weight, self.proj[0].bias, self.proj[3].weight, self.proj[3].bias, self.scaler,
                self.last.weight, self.last.bias)

    def folded(self) -> tuple:
        """What the inference path needs that depends on the weights alone, the pooling temperature T = exp(s) and
        the last layer (v, c) folded in: W1, b1; W2 / T, b2 / T (the softmax's input x / T); W_y, b_y with
        y_k = (x_k / T) (T v_k) - mean_j (x_j / T) (T v_j) + c, linear in the hidden units: W_y = diag(v) W2 minus its
        column means, b_y = v * b2 - mean(v * b2) + c; tau_min as a tensor. Rebuilt when a weight has changed in
        place (the parameters' version counters: an optimizer step, load_state_dict), after ``.to()`` / ``.half()``
        (`_apply`) and after a load that assigns new parameters (a load_state_dict post-hook)."""
        cached = self.__dict__.get("_folded")
        if cached is not None and tuple(map(_VERSION, cached[0])) == cached[1]:
            return cached[2]
        params = self._params()
        w1, b1, w2, b2, s, v, c = (p.detach() for p in params)
        t = s.exp()
        wy, by = w2 * v[0, :, None], b2 * v[0]
        folded = (w1, b1, w2 / t, b2 / t, wy - wy.mean(0, keepdim=True), by - by.mean() + c,
                  torch.tensor(self.tau_min, dtype=w1.dtype, device=w1.device))
        self.__dict__["_folded"] = (params, tuple(map(_VERSION, params)), folded)
        return folded

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_fast", None)  # holds the kernel's runner (not copyable; rebuilt at the next call)
        return state

    def _apply(self, fn, recurse=True):
        self.__dict__.pop("_folded", None)  # .to() / .half() / .cuda() replace the parameters' data
        self.__dict__.pop("_fast", None)
        return super()._apply(fn, recurse)

    def inference(self, logits: torch.Tensor) -> torch.Tensor:
        """tau ``(..., 1)`` without autograd (eval mode, no_grad), by `tau_folded` on the logits read as ``(N, 1, V)``.
        Equal to `pooled` up to rounding (tests/tempnet/test_tempnet_head.py)."""
        tau = tau_folded(logits.reshape(-1, 1, logits.shape[-1]), self.folded(), self.tau_max - self.tau_min, self.shift_max)
        return tau.view(*logits.shape[:-1], 1)

    def temper(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits / tau(logits)``, what the output head's hook returns (`reprolab.models.assemble`). In eval mode
        without autograd and without hooks on this module (every decode step) one fused path: `tau_folded` on the logits
        as they come at a decode step ``(B, 1, V)`` (else read as ``(N, 1, V)``), the division in the logits' dtype,
        no module call: at the tiny LLaMA a decode step is ~500 aten calls and TempNet's share of it is set by its
        call count (benchmarks/tempnet_step.py). Unless ``compiled`` is False, a decode step that a kernel takes
        (`methods.tempnet.compiled`) is one kernel call instead; on CPU it divides ``logits`` in place (the head's
        fresh output, when called by the hook). Otherwise (training, autograd, a forward hook reading tau as
        the DRO loss does) the module is called, so its hooks see tau."""
        if (self.training or torch.is_grad_enabled() or self._forward_hooks or self._forward_pre_hooks
                or _nn_module._global_forward_hooks or _nn_module._global_forward_pre_hooks):
            return logits / self(logits).to(logits.dtype)
        run = self.__dict__.get("_fast")  # the kernel's runner (False: none here); reset by .to() and assigning loads
        if run is None and self.compiled is not False:
            run = self.__dict__["_fast"] = compiled_runner(self, logits) or False
        out = run(logits) if run else None
        if out is not None:
            return out
        x = logits if logits.dim() == 3 and logits.shape[1] == 1 else logits.reshape(-1, 1, logits.shape[-1])
        folded = self.folded()
        tau = tau_folded(x, folded, self.tau_max - self.tau_min, self.shift_max)
        out = x / (tau if tau.dtype == x.dtype else tau.to(x.dtype))
        return out if x is logits else out.view(logits.shape)


def tau_folded(x: torch.Tensor, folded: tuple, span: float, shift_max: bool) -> torch.Tensor:
    """tau ``(N, 1, 1)`` of logits ``(N, 1, V)`` from `TempNet.folded` weights (``span`` = tau_max - tau_min;
    ``shift_max``: shifted, then cast to the weights' dtype, as `TempNet.pooled` does), without autograd, in 12 aten
    calls: Linear(x / |x|) = (x W1^T) / |x| + b1 (|x| clamped at F.normalize's 1e-12) one addcdiv; z = sum_k
    softmax(x / T)_k y_k = sum_k (w_k - 1/M) (x_k / T) (T v_k) + c (sum_k w_k = 1) from two linears of the hidden
    units, softmax, mul, sum; tau_min + span sigmoid(z) one add. The twin of the kernels of `methods.tempnet.compiled`
    (C on CPU, Triton on CUDA)."""
    w1, b1, w2, b2, wy, by, lo = folded
    if shift_max:
        x = x - x.amax(-1, keepdim=True)
    if x.dtype != w1.dtype:
        x = x.to(w1.dtype)
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min_(1e-12)
    h = torch.addcdiv(b1, F.linear(x, w1), norm).sigmoid_()
    z = F.linear(h, w2, b2).softmax(-1).mul_(F.linear(h, wy, by)).sum(-1, keepdim=True)
    return torch.add(lo, z.sigmoid_(), alpha=span)


def _drop_folded(module: TempNet, _incompatible) -> None:
    """After a load (which may assign new parameters): the folded weights are rebuilt at the next call."""
    module.__dict__.pop("_folded", None)
    module.__dict__.pop("_fast", None)


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
