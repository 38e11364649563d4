"""RoseLoRA's training-time machinery: sensitivity importance (EMA) and per-row / per-column pruning.

Wang et al., "RoseLoRA: Row and Column-wise Sparse Low-rank Adaptation of Pre-trained Language Model
for Knowledge Editing and Fine-tuning", arXiv:2406.10777 (../shared/papers/roselora.md §2.3-2.5).

For every adapted layer, A = ``lora_A.weight`` (r, in) and B = ``lora_B.weight`` (out, r):

- importance (§2.3), after the backward pass and before ``optimizer.step()`` (pre-step weights)::

      I = |g ⊙ w|;  first step: Ī = I;  afterwards Ī ← β1 Ī + (1 − β1) I          (β1 = 0.8)
      with ``use_uncertainty`` (AdaLoRA's form): Ū ← β2 Ū + (1 − β2) |I − Ī|, score = Ī ⊙ Ū

- pruning (§2.5), after ``optimizer.step()`` once the kept fraction ``rate`` < 1: each row of A
  keeps its highest-score entries (over the ``in`` inputs), each column of B likewise (over the
  ``out`` outputs); the rest is set to 0. ``selection="kthvalue"`` is the official rule
  (threshold = the k-th smallest score with k = ⌊n(1 − rate)⌋, keep score >= threshold: n − k + 1
  entries when scores are distinct); ``"topk"`` keeps exactly ⌈rate·n⌉. Then, optionally, both
  matrices are clamped to ±``clamp`` (official code only). The mask is not persistent: a pruned
  entry gets optimizer updates at the next step and survives the next prune only if its score does.

Layers whose A and B have the same shapes are one group: their weights, gradients and importance
are stacked into (L, r, in) / (L, out, r) tensors, so one ``kthvalue`` prunes them all and the
masks go back through ``torch._foreach_mul_``. Importance is kept in fp32 whatever the weights'
dtype (the official code keeps it in the parameter dtype: bf16 on LLaMA-2-7B).
"""
from __future__ import annotations

import math
from collections import defaultdict

import torch


def keep_rate(step: int, density: float, t_init: int, t_final: int) -> float:
    """Kept fraction at optimizer step ``step`` (0-based), the cubic schedule of §2.4: 1 until ``t_init``,
    ρ + (1 − ρ)(1 − (step − t_init)/(t_final − t_init))³ until ``t_final``, then ρ (= ``density``)."""
    if step < t_init:
        return 1.0
    if step >= t_final:
        return density
    return density + (1.0 - density) * (1.0 - (step - t_init) / (t_final - t_init)) ** 3


def keep_mask(score: torch.Tensor, rate: float, dim: int, selection: str) -> torch.Tensor | None:
    """Boolean mask of the entries kept along ``dim`` (per row or per column); None: keep everything
    (``kthvalue`` with k = ⌊n(1 − rate)⌋ = 0, which the official code would crash on)."""
    n = score.shape[dim]
    if selection == "topk":
        k = math.ceil(rate * n)
        if k >= n:
            return None
        idx = score.topk(k, dim=dim).indices
        return torch.zeros_like(score, dtype=torch.bool).scatter_(dim, idx, True)
    k = int(n * (1.0 - rate))
    if k < 1:
        return None
    threshold = score.kthvalue(k, dim=dim, keepdim=True).values
    return score >= threshold


class _Group:
    """Same-shape layers: their A's, B's and stacked importance state."""

    def __init__(self, a: list[torch.Tensor], b: list[torch.Tensor], uncertainty: bool):
        self.a, self.b = a, b
        dev = a[0].device
        self.imp_a = torch.zeros((len(a), *a[0].shape), device=dev)
        self.imp_b = torch.zeros((len(b), *b[0].shape), device=dev)
        self.unc_a = torch.zeros_like(self.imp_a) if uncertainty else None
        self.unc_b = torch.zeros_like(self.imp_b) if uncertainty else None


def _stacked(params: list[torch.Tensor], grads: bool) -> torch.Tensor:
    if grads:
        return torch.stack([p.grad if p.grad is not None else torch.zeros_like(p) for p in params]).float()
    return torch.stack([p.detach() for p in params]).float()


class RowColumnPruner:
    """Importance EMAs and pruning over peft LoRA layers (``{name: peft lora.Linear}``) for one adapter."""

    def __init__(self, layers: dict, adapter_name: str, beta1: float, beta2: float, use_uncertainty: bool,
                 selection: str, clamp: float | None):
        self.names = sorted(layers)
        self.beta1, self.beta2, self.selection, self.clamp = beta1, beta2, selection, clamp
        by_shape = defaultdict(list)
        for name in self.names:
            layer = layers[name]
            a, b = layer.lora_A[adapter_name].weight, layer.lora_B[adapter_name].weight
            by_shape[(tuple(a.shape), tuple(b.shape))].append((a, b))
        self.groups = [_Group([a for a, _ in ab], [b for _, b in ab], use_uncertainty) for ab in by_shape.values()]
        self.updates = 0  # importance updates so far (the first one takes |g w| as it is)

    # ---- §2.3 ---------------------------------------------------------------------------------
    @torch.no_grad()
    def update_importance(self) -> None:
        """Fold this step's sensitivity |g ⊙ w| into the EMAs; call before ``optimizer.step()``."""
        for g in self.groups:
            for params, imp, unc in ((g.a, g.imp_a, g.unc_a), (g.b, g.imp_b, g.unc_b)):
                sens = (_stacked(params, True) * _stacked(params, False)).abs_()
                if self.updates == 0:
                    imp.copy_(sens)
                else:
                    imp.mul_(self.beta1).add_(sens, alpha=1 - self.beta1)
                if unc is not None:
                    unc.mul_(self.beta2).add_((sens - imp).abs_(), alpha=1 - self.beta2)
        self.updates += 1

    def scores(self, g: _Group) -> tuple[torch.Tensor, torch.Tensor]:
        if g.unc_a is None:
            return g.imp_a, g.imp_b
        return g.imp_a * g.unc_a, g.imp_b * g.unc_b

    # ---- §2.5 ---------------------------------------------------------------------------------
    @torch.no_grad()
    def prune(self, rate: float) -> None:
        """Zero all but the top-score entries of each row of A and each column of B; then clamp."""
        for g in self.groups:
            score_a, score_b = self.scores(g)
            # A (L, r, in): per row = over the last dim; B (L, out, r): per column = over dim 1
            for params, score, dim in ((g.a, score_a, -1), (g.b, score_b, -2)):
                mask = keep_mask(score, rate, dim, self.selection)
                if mask is not None:
                    torch._foreach_mul_(params, [m.to(params[0].dtype) for m in mask.unbind(0)])
                if self.clamp is not None:
                    torch._foreach_clamp_min_(params, -self.clamp)
                    torch._foreach_clamp_max_(params, self.clamp)

    # ---- resume -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"updates": self.updates, "names": list(self.names),
                "groups": [{k: getattr(g, k).cpu().clone() for k in ("imp_a", "imp_b", "unc_a", "unc_b")
                            if getattr(g, k) is not None} for g in self.groups]}

    def load_state_dict(self, state: dict) -> None:
        from reprolab.checks import UserError

        if state.get("names") != self.names or len(state["groups"]) != len(self.groups):
            raise UserError("the RoseLoRA importance state in this checkpoint was saved for other adapted layers: "
                            "resume with the same model and adapter.target_modules.")
        for g, saved in zip(self.groups, state["groups"]):
            for k, t in saved.items():
                getattr(g, k).copy_(t)
        self.updates = int(state["updates"])

    def state_numel(self) -> int:
        """Floats of importance state (Ī, and Ū with the uncertainty term)."""
        return sum(t.numel() for g in self.groups for t in (g.imp_a, g.imp_b, g.unc_a, g.unc_b) if t is not None)
