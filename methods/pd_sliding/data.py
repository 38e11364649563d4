"""The data sets of the pd_sliding problems, split into per-worker shards (numpy, float64).

``least_squares_shards``: spec §5 synthetic l1-constrained least squares. ``libsvm_shards``: a
LIBSVM classification file, shuffled once and split evenly over the workers. `assemble` turns
shards into the `FiniteSumProblem` of one process (its own rows; global constants from all).
"""
from __future__ import annotations

import numpy as np
import torch

from methods.pd_sliding.problems import FiniteSumProblem


def least_squares_shards(spec) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(A_i (n, d) ~ N(0, 1/n), b_i = A_i x0 + noise N(0, noise^2), x0) from ``default_rng(spec.seed)``.

    x0 has ``sparsity`` non-zeros (l1, or no constraint) or rank ``sparsity`` (nuclear) and norm
    ``truth_norm`` in the constraint's norm, so a ball of radius < truth_norm puts the optimum on
    its boundary (spec §5: ||x0||_1 = 1.5, radius 1).
    """
    rng = np.random.default_rng(spec.seed)
    m, n, d = spec.workers, spec.samples_per_worker, spec.dim
    if spec.constraint.kind == "nuclear":
        p, q = spec.constraint.shape
        x0 = (rng.standard_normal((p, spec.sparsity)) @ rng.standard_normal((spec.sparsity, q)))
        x0 = (x0 * spec.truth_norm / np.linalg.norm(x0, ord="nuc")).ravel()
    else:
        x0 = np.zeros(d)
        support = rng.choice(d, size=spec.sparsity, replace=False)
        x0[support] = rng.standard_normal(spec.sparsity)
        x0 *= spec.truth_norm / np.abs(x0).sum()
    A = rng.standard_normal((m, n, d)) / np.sqrt(n)
    b = A @ x0 + spec.noise * rng.standard_normal((m, n))
    return list(A), list(b), x0


def libsvm_shards(spec) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Rows of the file shuffled with ``default_rng(spec.shuffle_seed)`` and split into ``workers`` parts."""
    from reprolab.checks import ConfigError
    from reprolab.data.libsvm import read_libsvm

    features, labels = read_libsvm(spec.path, spec.n_features)
    if spec.workers > len(labels):
        raise ConfigError(f"problem.workers={spec.workers} exceeds the {len(labels)} samples of {spec.path}: every "
                          f"worker needs at least one sample; use problem.workers <= {len(labels)}.")
    order = np.random.default_rng(spec.shuffle_seed).permutation(len(labels))
    parts = np.array_split(order, spec.workers)
    return [features[p] for p in parts], [labels[p] for p in parts]


def smoothness(A: list[np.ndarray], loss: str, weight: float) -> tuple[list[float], float]:
    """(L_i of each f_i, L_F of F = sum_i f_i): weight sup|loss''| ||A||_2^2."""
    curvature = 1.0 if loss == "least_squares" else 0.25
    L_i = [curvature * weight * np.linalg.norm(a, 2) ** 2 for a in A]
    return L_i, curvature * weight * np.linalg.norm(np.concatenate(A), 2) ** 2


def assemble(A: list[np.ndarray], y: list[np.ndarray], *, loss: str, weight: float, graph, X, workers: list[int],
             name: str, seed: int, device, dtype) -> FiniteSumProblem:
    """The problem of the processes owning ``workers``, with L = max_i L_i and L_F from all shards."""
    L_i, L_total = smoothness(A, loss, weight)
    n_max, d = max(len(a) for a in A), A[0].shape[1]
    k = len(workers)
    At = np.zeros((k, n_max, d))
    yt, wt = np.zeros((k, n_max)), np.zeros((k, n_max))
    for r, i in enumerate(workers):
        At[r, : len(A[i])], yt[r, : len(y[i])], wt[r, : len(y[i])] = A[i], y[i], weight
    as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    return FiniteSumProblem(
        loss=loss, A=as_t(At), y=as_t(yt), w=as_t(wt),
        counts=torch.as_tensor([len(y[i]) for i in workers], device=device), workers=list(workers), graph=graph,
        X=X, L=float(max(L_i)), L_total=float(L_total), min_count=min(len(v) for v in y), name=name, seed=seed)


def full_objective(A: list[np.ndarray], y: list[np.ndarray], loss: str, weight: float, dtype=torch.float64):
    """``f(x (1, d), value_only=False) -> (F(x), grad F(x) (1, d), Hessian (d, d))`` on the whole data set."""
    from methods.pd_sliding.problems import _loss_and_slope

    At = torch.as_tensor(np.concatenate(A), dtype=dtype)
    yt = torch.as_tensor(np.concatenate(y), dtype=dtype)

    def objective(x, value_only: bool = False):
        z = At @ x[0]
        val, slope = _loss_and_slope(z, yt, loss)
        if value_only:
            return weight * val.sum()
        if loss == "least_squares":
            curv = torch.ones_like(z)
        else:
            s = torch.sigmoid(yt * z)
            curv = s * (1 - s)
        return weight * val.sum(), (weight * (At.T @ slope)).unsqueeze(0), weight * (At.T * curv) @ At

    return objective
