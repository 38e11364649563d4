from __future__ import annotations

from dataclasses import dataclass

from reprolab import checks
from reprolab.registry import schema

from methods.contrastive import ContrastiveObjective, GlobalEstimator, similarity_diffs


@schema("objective", "sogclr")
@dataclass
class SogCLRConfig(ContrastiveObjective):
    """SogCLR: the global contrastive loss with a fixed temperature, each anchor's mean over all the
    dataset's negatives tracked by a moving average (Yuan et al., "Provable Stochastic Optimization for
    Global Contrastive Learning", ICML 2022, arXiv:2202.12387; as TempNet's baseline
    `zhqiu/TempNet:Bimodal_CL/models/losses.py` ``SogCLR_Loss``, ../shared/papers/tempnet.md §3):

        g_i = sum_{j != i} exp(d_ij - b_i) / (B - 1),  d = (s_ij - s_ii) / tau,  s_i <- g_i (epoch 0) or
        (1 - gamma) s_i exp(b_old - b_i) + gamma g_i;  loss = mean_i sum_j exp(d_ij - b_i) / s_i (s_ij - s_ii) / (B - 1)

    for images and texts as anchors (summed). tau: fixed temperature (default 0.07, the code's);
    gamma: the moving-average weight (default 0.1, the code's class default; TempNet's runs use 0.8).
    """

    tau: float = 0.07
    gamma: float = 0.1

    def __post_init__(self):
        checks.positive("method.tau", self.tau)
        checks.in_range("method.gamma", self.gamma, 0.0, 1.0, lo_open=True)
        self.estimators = {"image": GlobalEstimator(), "text": GlobalEstimator()}  # state, not a hyperparameter

    def pair_loss(self, model, image, text, batch):
        first = int(batch["epoch"]) == 0
        norm = image.shape[0] - 1
        out = {"loss": 0.0}
        for name, diffs in zip(("image", "text"), similarity_diffs(image, text)):
            w, _, _ = self.estimators[name].weights((diffs / self.tau).detach(), batch["index"], self.gamma, first, norm)
            out["loss"] = out["loss"] + ((w * diffs).sum(1) / norm).mean()
        return out

    def state_dict(self):
        return {k: e.state_dict() for k, e in self.estimators.items()}

    def load_state_dict(self, state):
        for k, e in self.estimators.items():
            e.load_state_dict(state[k])
