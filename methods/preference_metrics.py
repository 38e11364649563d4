"""Evaluation of a reward model against a known reward (spec ../shared/papers/r3m.md §5.1 metrics).

1. clean test pairwise accuracy (the objective's ``reward_acc`` on the clean test pairs);
2. reward recovery: Pearson and Spearman correlation of r_hat with r* on fresh items;
3. outlier identification on the training pairs (as labelled) with the current model: a pair is
   flagged when d_i < c (R3M's delta_i = max(c - d_i, 0) > 0); precision, recall and F1 of the
   flags against the recorded ``flipped``, the flagged share, and the threshold-free AUROC of -d.

4. (adaptive_pref §5.1 B) the mean |x| and each per-pair statistic (APS's tau) per quintile of the true
   preference strength |Delta r*| of the clean test pairs, and the KL-regularised bandit proxy.
5. (adaptive_pref §2.7, the official ``rm_test``) the expected calibration error of the model's preference
   probabilities sigmoid(x / tau) on the clean test pairs (`calibration_error`).

All are returned as the lm runner's ``(sum, count)`` pairs. The source serves its validation set as
one batch, so the whole-set statistics (correlations, AUROC) come as ``(value, 1)``; precision,
recall, F1 and the flagged share are exact ratios of counts.
"""
from __future__ import annotations

import torch


def ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of ``x`` (ties get their average rank)."""
    x = x.double().flatten()
    order = torch.argsort(x)
    sorted_x = x[order]
    r = torch.empty_like(x)
    r[order] = torch.arange(1, x.numel() + 1, dtype=torch.float64)
    _, inverse, counts = torch.unique_consecutive(sorted_x, return_inverse=True, return_counts=True)
    if (counts > 1).any():  # average the ranks within each run of equal values
        sums = torch.zeros(counts.numel(), dtype=torch.float64).index_add_(0, inverse, r[order])
        r[order] = (sums / counts)[inverse]
    return r


def pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x, y = x.double().flatten(), y.double().flatten()
    x, y = x - x.mean(), y - y.mean()
    return (x * y).sum() / (x.norm() * y.norm()).clamp(min=1e-300)


def spearman(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return pearson(ranks(x), ranks(y))


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """P(score of a random positive > score of a random negative), ties counted 1/2 (Mann-Whitney U)."""
    positive = positive.bool().flatten()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return torch.tensor(float("nan"), dtype=torch.float64)
    r = ranks(scores)
    return (r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def outlier_counts(d: torch.Tensor, flipped: torch.Tensor, threshold: float) -> dict:
    """Flags d < threshold against the truly flipped pairs: ``(sum, count)`` pairs of precision,
    recall, F1 (= 2 TP / (|flagged| + |flipped|)), the flagged share and the true flip share."""
    flagged, flipped = d < threshold, flipped.bool()
    tp = (flagged & flipped).sum().double()
    n_flag, n_flip = flagged.sum().double(), flipped.sum().double()
    n = torch.tensor(float(d.numel()), dtype=torch.float64)
    return {"outlier_precision": (tp, n_flag), "outlier_recall": (tp, n_flip), "outlier_f1": (2 * tp, n_flag + n_flip),
            "flagged_share": (n_flag, n), "flipped_share": (n_flip, n)}


def reward_model_metrics(model: torch.nn.Module, batch: dict, threshold: float, beta: float = 1.0) -> dict:
    """The metrics above for a validation batch of `reprolab.data.preference_features` (one batch);
    the flags compare the scaled margin beta * d with ``threshold``."""
    one = torch.tensor(1.0, dtype=torch.float64)
    r_hat = model(batch["item_features"]).detach()
    out = {"pearson": (pearson(r_hat, batch["item_reward"]), one), "spearman": (spearman(r_hat, batch["item_reward"]), one)}
    if "train_flipped" in batch:
        d = beta * (model(batch["train_chosen_features"]) - model(batch["train_rejected_features"])).detach()
        flipped = batch["train_flipped"]
        out.update(outlier_counts(d, flipped, threshold))
        out["outlier_auroc"] = (auroc(-d, flipped), one)
    if "bandit_features" in batch:
        contexts, candidates = batch["bandit_reward"].shape
        r_hat = model(batch["bandit_features"].flatten(0, 1)).detach().view(contexts, candidates)
        out.update({k: (v * contexts, torch.tensor(float(contexts), dtype=torch.float64))
                    for k, v in bandit_proxy(r_hat, batch["bandit_reward"]).items()})
    return out


def calibration_error(p_chosen: torch.Tensor, bins: int = 15) -> torch.Tensor:
    """ECE (l1) of pairwise preference probabilities, as the official APS code computes it (torchmetrics'
    ``BinaryCalibrationError(n_bins=15, norm='l1')`` on p and 1 - p with targets 1 and 0): over equal-width bins of
    the predicted probability, sum of |mean target - mean prediction| x the bin's share of predictions."""
    p = p_chosen.detach().double().flatten()
    preds, target = torch.cat([p, 1 - p]), torch.cat([torch.ones_like(p), torch.zeros_like(p)])
    which = (torch.bucketize(preds, torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1], right=True))
    count = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, torch.ones_like(preds))
    conf = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, preds)
    acc = torch.zeros(bins, dtype=torch.float64).index_add_(0, which, target)
    return (acc - conf).abs().sum() / preds.numel()


BANDIT_BETAS = (0.1, 0.3, 1.0)


def bandit_proxy(r_hat: torch.Tensor, r_true: torch.Tensor) -> dict:
    """The KL-regularised bandit proxy of ../shared/papers/adaptive_pref.md §5.1 B, averaged over contexts
    (rows): E_pi[r*] of pi = softmax(r_hat / beta_pol) for each beta_pol, the same for the oracle
    pi* = softmax(r* / beta_pol), the true reward of the best-of-N candidate under r_hat and the oracle's."""
    r_hat, r_true = r_hat.double(), r_true.double()
    out = {}
    for b in BANDIT_BETAS:
        out[f"policy_value_b{b:g}"] = (torch.softmax(r_hat / b, -1) * r_true).sum(-1).mean()
        out[f"oracle_policy_value_b{b:g}"] = (torch.softmax(r_true / b, -1) * r_true).sum(-1).mean()
    out["best_of_n"] = r_true.gather(-1, r_hat.argmax(-1, keepdim=True)).mean()
    out["oracle_best_of_n"] = r_true.max(-1).values.mean()
    return out


def quintile_means(values: dict, strength: torch.Tensor, bins: int = 5) -> dict:
    """``(sum, count)`` of each per-pair value within each quintile of the true preference strength
    (``strength`` = |Delta r*|; q1 the weakest): ``{name}_q1`` ... ``{name}_q5``."""
    edges = torch.quantile(strength.double(), torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1])
    which = torch.bucketize(strength.double(), edges)
    out = {}
    for name, v in values.items():
        for q in range(bins):
            m = which == q
            out[f"{name}_q{q + 1}"] = (v[m].double().sum(), m.sum().double())
    return out
