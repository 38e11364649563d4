from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import ObjectiveMethod

from methods.dro_lm.loss import MASKS


@schema("objective", "dro_lm")
@dataclass
class DroLmConfig(ObjectiveMethod):
    """The KL-DRO next-token loss with a temperature per token (Qiu et al., "To Cool or not to Cool?
    Temperature Network Meets Large Foundation Models via DRO", ICML 2024, arXiv:2404.04575;
    ../shared/papers/tempnet.md §2.1; `methods.dro_lm.loss`): tau CE(h/tau, y) + tau (rho - log K),
    K the logits' size, tau from the run's temperature slot (``temperature=tempnet``: TempNet;
    ``temperature=global_tau temperature.learnable=true``: the ablation's one global tau, Baseline2).

    rho: the KL radius; default 8.5, the LLaMA-2 script (`LLaMA-2/pretrain_llama_distributed.sh`);
      GPT-2 from scratch 8.0, LLaMA-1 10.0, the code's default 1.0. Only rho < log K is meaningful:
      at rho >= log K the dual is minimised at tau -> 0 (a warning says so).
    mask: ``labels`` averages over the labelled positions only; ``none`` is the official code (the
      loss mask is not used: the mean runs over every position, and a position without a label adds
      its tau (rho - log K) term). The two agree on data without ignored positions.
    Validation (``val/*``): ``loss`` = NLL of softmax(h/tau) (the model's prediction), ``nll_raw`` =
    NLL of softmax(h) (tau = 1), ``dro`` = the DRO loss, ``tau`` = mean tau, per labelled token.
    """

    needs_temperature: ClassVar[bool] = True
    rho: float = 8.5
    mask: str = "labels"

    def __post_init__(self):
        checks.non_negative("method.rho", self.rho)
        checks.one_of("method.mask", self.mask, MASKS)

    def check_rho(self, vocab: int) -> None:
        """Warn once when rho >= log K (tau is then driven to its lower bound)."""
        if self.rho >= math.log(vocab) and not self.__dict__.get("warned_rho"):
            self.__dict__["warned_rho"] = True
            warnings.warn(f"objective.rho={self.rho} >= log K = {math.log(vocab):.4f} (K = {vocab}, the logits' size): "
                          "the DRO dual is then minimised at tau -> 0, so tau sits at its lower bound. Pick rho < log K.",
                          stacklevel=3)

    def _terms(self, model, batch, raw: bool = False):
        from methods.dro_lm.loss import dro_terms, tempered_forward

        if not hasattr(model, "temperature"):
            raise checks.ConfigError("objective=dro_lm divides the logits by a temperature, and the model has none: add "
                                     "temperature=tempnet (or temperature=global_tau temperature.learnable=true).")
        logits, tau = tempered_forward(model, batch)
        self.check_rho(logits.shape[-1])
        return dro_terms(logits, tau, batch["labels"], self.rho, raw)

    def loss(self, model, batch, reference=None):
        from methods.dro_lm.loss import dro_loss

        terms = self._terms(model, batch)
        valid = terms["valid"]
        return {"loss": dro_loss(terms, self.mask), "tau": terms["tau"][valid].mean().detach(),
                "nll": terms["nll"][valid].mean().detach()}

    def evaluate(self, model, batch, reference=None):
        terms = self._terms(model, batch, raw=True)
        valid = terms["valid"]
        n = valid.sum()
        return {"loss": (terms["nll"][valid].sum(), n), "nll_raw": (terms["nll_raw"][valid].sum(), n),
                "dro": (terms["dro"][valid].sum(), n), "tau": (terms["tau"][valid].sum(), n)}
