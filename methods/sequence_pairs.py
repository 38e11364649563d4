"""Pairwise objectives whose loss needs more than DPO's margin h: SimPO, SimPO-SFT, ORPO, KTO, DPOP (the
self-play baselines of DFT, ../shared/papers/dft.md §3).

They read each pair's *sequence terms* (`PairTerms`): the policy's summed answer log-probs and answer
lengths of the chosen (w) and rejected (l) answers, and the frozen reference's log-probs when the
objective uses one. A subclass writes ``from_terms(terms, batch) -> (x, losses, stats)``: x is the
scaled margin the base class logs (``reward_acc`` = share of x > 0, ``margin`` = mean x); losses and
stats are per pair. The model is run once per batch (`margins`), the terms kept for `pair_losses`.
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from methods.pairwise import PairwiseObjective
from reprolab import checks


@dataclass
class PairTerms:
    pw: torch.Tensor                    # (B,) log pi(w), summed over its answer tokens
    pl: torch.Tensor                    # (B,) log pi(l)
    nw: torch.Tensor                    # (B,) answer tokens of w
    nl: torch.Tensor                    # (B,) answer tokens of l
    rw: Optional[torch.Tensor] = None   # (B,) log pi_ref(w) (objectives with a reference)
    rl: Optional[torch.Tensor] = None   # (B,) log pi_ref(l)


def pair_terms(model, batch: dict, reference=None) -> PairTerms:
    from methods.preference import pair_logps

    pw, pl = pair_logps(model, batch)
    nw, nl = ((batch[f"{k}_labels"] != -100).sum(-1).to(pw.dtype) for k in ("chosen", "rejected"))
    if reference is None:
        return PairTerms(pw, pl, nw, nl)
    with torch.no_grad():
        rw, rl = pair_logps(reference, batch)
    return PairTerms(pw, pl, nw, nl, rw, rl)


@dataclass
class SequencePairObjective(PairwiseObjective):
    """Base of the objectives above; ``uses_reference``: the runner builds the frozen reference."""

    uses_reference: ClassVar[bool] = False

    def __post_init__(self):
        super().__post_init__()
        if self.margin != "policy":
            raise checks.ConfigError(f"objective={self.registered_name} scores the answers of a causal LM on preference "
                                     f"(token) batches: method.margin must be policy, not {self.margin!r}.")

    @property
    def needs_reference(self) -> bool:  # type: ignore[override]
        return self.uses_reference

    @abstractmethod
    def from_terms(self, t: PairTerms, batch: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(x (B,), per-pair losses (B,), per-pair stats {name: (B,)})."""

    def margins(self, model, batch, reference=None):
        if self.uses_reference and reference is None:
            raise ValueError(f"objective={self.registered_name} needs the frozen reference model.")
        self._last = self.from_terms(pair_terms(model, batch, reference if self.uses_reference else None), batch)
        return self._last[0]

    def pair_losses(self, x, batch):
        _, losses, stats = self._last
        return losses, stats
