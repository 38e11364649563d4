from __future__ import annotations

import math
from dataclasses import dataclass

from methods.pairwise import PairBuffer, PairwiseObjective
from reprolab import checks
from reprolab.registry import schema

SOLVERS = ("newton", "closed_form")
PENALTIES = ("linear", "quadratic")


@schema("objective", "adaptive_pref")
@dataclass
class AdaptivePrefConfig(PairwiseObjective):
    """Adaptive preference scaling (APS / Ada-Pref): Hong, Li, Bukharin, Li, Jiang, Yang, Zhao,
    "Adaptive Preference Scaling for Reinforcement Learning with Human Feedback", NeurIPS 2024,
    arXiv:2406.02764, Eq. 6 with Alg. 1 (spec ../shared/papers/adaptive_pref.md §2):

        L_i = -tau_i log sigmoid(x_i / tau_i) + (rho0 - log 2) tau_i,   tau_i in [tau0, tau_max]

    tau_i solved per pair on the detached margin (`methods.adaptive_pref.tau`): ``solver: newton``,
    K = ``newton_steps`` projected Newton steps from tau = 1 with the official guards (log(2s + eps),
    f'' >= eps with eps = ``newton_eps``), or ``closed_form`` (the exact minimiser, spec §2.3); then a
    gradient step on the model with tau fixed. ``loss_eps`` > 0 reproduces the code's log(sigmoid + eps)
    (the robotics code's log(2 sigmoid + 1e-8) is loss_eps = 5e-9); 0 is the exact log-sigmoid.
    ``rho0`` is the KL radius (the code's ``rho``; the paper's rho = rho0 - log 2). The last tau of each
    training pair is kept by ``pair_id`` and saved with the run; logged: mean tau, shares at the bounds.

    ``penalty: quadratic`` is the paper's quadratic variant (Sec. 3.6, spec §2.4): (rho0 - log 2) tau becomes
    rho0 tau^2 - (log 2) tau (the Newton step of the official code; ``closed_form`` is then the exact minimiser by
    bisection, `methods.adaptive_pref.tau.quadratic_tau`); the robotics code bounds tau only below (tau_max=1e8).

    Defaults (reward model, ``margin=reward``, beta = 1): tau0 = 0.1 (fixed in every run of the paper),
    tau_max = 1.0 and rho0 = 0.1 (the official README command = the Ant setting of Table 4), K = 3
    (robotics), newton_eps = 1e-8, loss_eps = 5e-9 (robotics code). Ada-DPO: ``objective=ada_dpo``.
    """

    margin: str = "reward"
    beta: float = 1.0
    tau0: float = 0.1
    tau_max: float = 1.0
    rho0: float = 0.1
    solver: str = "newton"
    newton_steps: int = 3
    newton_eps: float = 1e-8
    loss_eps: float = 5e-9
    penalty: str = "linear"

    def __post_init__(self):
        super().__post_init__()
        checks.positive("method.tau0", self.tau0)
        checks.positive("method.tau_max", self.tau_max)
        if self.tau_max < self.tau0:
            raise checks.ConfigError(f"method.tau_max={self.tau_max} is below method.tau0={self.tau0}: the bounds are "
                                     "inverted; set method.tau0 <= method.tau_max (the paper: tau0 0.1, tau_max 1-10).")
        checks.positive("method.rho0", self.rho0)
        checks.one_of("method.solver", self.solver, SOLVERS)
        checks.positive("method.newton_steps", self.newton_steps)
        checks.positive("method.newton_eps", self.newton_eps)
        checks.non_negative("method.loss_eps", self.loss_eps)
        checks.one_of("method.penalty", self.penalty, PENALTIES)
        self._tau = PairBuffer("tau")

    def tau(self, x):
        """Per-pair tau for the detached scaled margins x, by the configured solver."""
        from methods.adaptive_pref.tau import closed_form_tau, newton_tau, quadratic_tau

        x = x.detach()
        quadratic = self.penalty == "quadratic"
        if self.solver == "closed_form":
            return (quadratic_tau if quadratic else closed_form_tau)(x, self.tau0, self.tau_max, self.rho0)
        return newton_tau(x, self.tau0, self.tau_max, self.rho0, self.newton_steps, self.newton_eps, quadratic=quadratic)

    def pair_losses(self, x, batch):
        import torch
        import torch.nn.functional as F

        tau = self.tau(x)
        z = x / tau
        log_sig = F.logsigmoid(z) if self.loss_eps == 0 else torch.log(torch.sigmoid(z) + self.loss_eps)
        if self.penalty == "quadratic":
            losses = -tau * log_sig + self.rho0 * tau**2 - math.log(2) * tau
        else:
            losses = -tau * log_sig + (self.rho0 - math.log(2)) * tau
        stats = {"tau": tau, "tau_at_min": (tau <= self.tau0).float(), "tau_at_max": (tau >= self.tau_max).float()}
        return losses, stats

    def observe(self, x, stats, batch):
        from methods.preference import pair_ids

        self._tau.write(pair_ids(batch, self.registered_name), stats["tau"])

    @property
    def taus(self):
        """The last tau of every training pair seen (NaN: never visited), indexed by pair_id."""
        return self._tau.state()

    def state_dict(self) -> dict:
        return {"tau": self._tau.state()}

    def load_state_dict(self, state: dict) -> None:
        unknown = set(state) - {"tau"}
        if unknown:
            raise ValueError(f"objective={self.registered_name} keeps only 'tau', and the checkpoint holds "
                             f"{sorted(unknown)}: was it written by a run with another objective?")
        if "tau" in state:
            self._tau.load(state["tau"])


@schema("objective", "ada_dpo")
@dataclass
class AdaDPOConfig(AdaptivePrefConfig):
    """Ada-DPO (arXiv:2406.02764 §3.5; spec §2.5), in the official code's form: the Newton solve on the
    detached x = beta h, loss -tau log(sigmoid(beta h / tau) + 1e-6) (+ the constant (rho0 - log 2) tau).
    Defaults: the official ``dpo_trainer.py`` / README command: beta 0.1, tau0 0.1, tau_max 5, rho0 0.1,
    K = 5, newton_eps = loss_eps = 1e-6.
    """

    margin: str = "policy"
    beta: float = 0.1
    tau_max: float = 5.0
    newton_steps: int = 5
    newton_eps: float = 1e-6
    loss_eps: float = 1e-6
