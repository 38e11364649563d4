from __future__ import annotations

from dataclasses import dataclass

from reprolab import checks
from reprolab.registry import schema

from methods.contrastive import ContrastiveObjective, GlobalEstimator, similarity_diffs


@schema("objective", "isogclr")
@dataclass
class ISogCLRConfig(ContrastiveObjective):
    """The robust (KL-DRO) global contrastive loss with a temperature per anchor: iSogCLR (Qiu et al., "Not
    All Semantics are Created Equal: Contrastive Self-supervised Learning with Automatic Temperature
    Individualization", ICML 2023, arXiv:2305.11965) and, with ``temperature=tempnet_clip``, TempNet's
    robust contrastive loss (arXiv:2404.04575, ../shared/papers/tempnet.md §2.2; `zhqiu/TempNet:
    Bimodal_CL/models/losses.py` ``iSogCLR_Loss`` / ``iSogCLR_TempNet_Loss``). Per anchor i (images, then texts):

        L_i = tau_i log((1/|S_i^-|) sum_{j != i} exp((s_ij - s_ii) / tau_i)) + tau_i rho,

    the inner sum over the dataset's negatives tracked by SogCLR's moving average (`GlobalEstimator`, no
    1/(B-1) in g): encoders get sum_j w_ij (s_ij - s_ii), w = exp(d - b) / s; tau_i gets the dual's derivative
    gw_i = log(s_i / (B - 1)) + b_i + rho - sum_j w_ij d_ij. With TempNet (the model has a temperature) tau
    comes from it and the loss adds mean_i gw_i tau_i (gw constant); without, each sample's tau is a table
    entry (init ``tau_init``) moved by momentum SGD: u <- (1 - beta_u) u + beta_u clip(gw, +-grad_clip),
    tau <- clamp(tau - eta u, tau_min, tau_max).

    rho: the KL radius (8.0, the code's default; TempNet's CC3M script 7.0); gamma: moving-average weight
    (0.8); tau_init / tau_min / tau_max / eta / beta_u / grad_clip: the table's update (0.01, 0.005, 0.05,
    0.03, 0.5, 5.0: the code's; unused with TempNet, whose range is its own).
    """

    rho: float = 8.0
    gamma: float = 0.8
    tau_init: float = 0.01
    tau_min: float = 0.005
    tau_max: float = 0.05
    eta: float = 0.03
    beta_u: float = 0.5
    grad_clip: float = 5.0

    def __post_init__(self):
        from methods.tempnet.config import check_bounds

        checks.non_negative("method.rho", self.rho)
        checks.in_range("method.gamma", self.gamma, 0.0, 1.0, lo_open=True)
        check_bounds(self.tau_min, self.tau_max)
        checks.in_range("method.tau_init", self.tau_init, self.tau_min, self.tau_max)
        checks.positive("method.eta", self.eta)
        checks.in_range("method.beta_u", self.beta_u, 0.0, 1.0, lo_open=True)
        checks.positive("method.grad_clip", self.grad_clip)
        self.estimators = {"image": GlobalEstimator(), "text": GlobalEstimator()}  # state, not hyperparameters
        self.tables = {"image": {}, "text": {}}  # without TempNet: "tau" and "u" per sample

    def _table(self, name: str, ids):
        import torch

        t = self.tables[name]
        n = int(ids.max()) + 1
        if t.get("tau") is None or t["tau"].numel() < n:
            old = t.get("tau", torch.zeros(0))
            size = max(n, 2 * old.numel())
            t["tau"] = torch.cat([old, torch.full((size - old.numel(),), self.tau_init)])
            t["u"] = torch.cat([t.get("u", torch.zeros(0)), torch.zeros(size - old.numel())])
        return t

    def pair_loss(self, model, image, text, batch):
        import math

        import torch

        first = int(batch["epoch"]) == 0
        ids, B = batch["index"], image.shape[0]
        tempnet = getattr(model, "temperature", None)
        taus = dict(zip(("image", "text"), tempnet(image, text))) if tempnet is not None else {
            k: self._table(k, ids)["tau"][ids.cpu()].to(image) for k in ("image", "text")}
        out = {"loss": 0.0}
        for name, diffs in zip(("image", "text"), similarity_diffs(image, text)):
            tau = taus[name]
            d = (diffs / tau[:, None]).detach()
            w, s, b = self.estimators[name].weights(d, ids, self.gamma, first)
            out["loss"] = out["loss"] + (w * diffs).sum(1).mean()
            gw = (torch.log(s / (B - 1)) + b + self.rho - (w * d).sum(1)).detach()
            if tempnet is not None:
                out["loss"] = out["loss"] + (gw * tau).mean()
            else:
                t = self.tables[name]
                i = ids.cpu()
                t["u"][i] = (1 - self.beta_u) * t["u"][i] + self.beta_u * gw.cpu().float().clamp(-self.grad_clip, self.grad_clip)
                t["tau"][i] = (t["tau"][i] - self.eta * t["u"][i]).clamp(self.tau_min, self.tau_max)
            out[f"tau_{name}"] = tau.detach().mean()
        return out

    def state_dict(self):
        return {**{f"estimator_{k}": e.state_dict() for k, e in self.estimators.items()},
                **{f"table_{k}": dict(t) for k, t in self.tables.items()}}

    def load_state_dict(self, state):
        for k, e in self.estimators.items():
            e.load_state_dict(state[f"estimator_{k}"])
        self.tables = {k: dict(state[f"table_{k}"]) for k in ("image", "text")}
