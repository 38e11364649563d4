"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner.

Vyas, Morwani, Zhao, Kwun, Shapira, Brandfonbrener, Janson, Kakade, "SOAP: Improving and
Stabilizing Shampoo using Adam", arXiv:2409.11321. Reference code nikhilvyas/SOAP `soap.py`
(HEAD, with the Dec 2024 change that keeps the momentum in the eigenbasis); cosmos.md §3.2.

For a matrix W (m x n) with gradient G, L = EMA(G G^T) (m x m) and R = EMA(G^T G) (n x n), with
eigenbases Q_L, Q_R (descending eigenvalues). A side longer than ``max_precond_dim`` has no
factor (identity on that side).

- First call: L, R <- (1 - beta_s) G G^T, (1 - beta_s) G^T G; Q from `eigh`; **W is not changed**
  and the step count does not advance (the current gradient never preconditions itself).
- Step t >= 1:  G' = Q_L^T G Q_R;  m <- beta1 m + (1 - beta1) G';  v <- beta2 v + (1 - beta2) G'^2
  W <- W - lr sqrt(1 - beta2^t) / (1 - beta1^t) * Q_L [m / (sqrt(v) + eps)] Q_R^T;  W <- W - lr wd W
  then L, R are updated with G (after the step), and every ``precondition_frequency`` steps each Q
  is refreshed by one power step: sort Q's columns by diag(Q^T L Q) descending, permute v the same
  way, Q <- QR(L Q). m lives in the eigenbasis and is rotated into the new one.

State per m x n matrix (both sides preconditioned): exp_avg, exp_avg_sq (mn each), L (m^2),
R (n^2), Q_L (m^2), Q_R (n^2) = 2mn + 2m^2 + 2n^2 elements.

Deviations: tensors with more than two dims are flattened to (size(0), -1) (the official code
keeps one factor per dim, or merges dims on request); 1-D tensors are rows (1, n) whose only
factor is R when ``precondition_1d``. m is rotated only when Q changes (the official code
projects it back and forth every step, the identity up to fp32 rounding). No merge_dims,
data_format. Same-shape tensors at the same step count take the step as one batch (one set
of GPU launches, not one per tensor), each exactly as alone.
"""
from __future__ import annotations

import torch

from methods.optim import CheckedOptimizer, init_packed, packed_state, same_shape_batches, stack


def eigenbasis(mat: torch.Tensor) -> torch.Tensor:
    """Eigenvectors of a symmetric PSD matrix (or of each of a batch), descending eigenvalues
    (float64 retry on failure)."""
    eye = torch.eye(mat.shape[-1], dtype=mat.dtype, device=mat.device)
    try:
        _, q = torch.linalg.eigh(mat + 1e-30 * eye)
    except RuntimeError:
        _, q = torch.linalg.eigh(mat.double() + 1e-30 * eye.double())
    return q.flip(-1).to(mat.dtype)


class SOAP(CheckedOptimizer):
    """SOAP optimizer (arXiv:2409.11321); the update is in the module docstring.

    Args (official defaults): lr 3e-3, betas (0.95, 0.95), shampoo_beta None (= beta2), eps 1e-8,
    weight_decay 0.01, precondition_frequency 10, max_precond_dim 10000, precondition_1d False,
    normalize_grads False (divide the update by its RMS), correct_bias True.
    """

    def __init__(self, params, lr: float = 3e-3, betas=(0.95, 0.95), shampoo_beta: float | None = None,
                 eps: float = 1e-8, weight_decay: float = 0.01, precondition_frequency: int = 10,
                 max_precond_dim: int = 10000, precondition_1d: bool = False, normalize_grads: bool = False,
                 correct_bias: bool = True):
        defaults = dict(lr=lr, betas=tuple(betas), shampoo_beta=shampoo_beta, eps=eps, weight_decay=weight_decay,
                        precondition_frequency=precondition_frequency, max_precond_dim=max_precond_dim,
                        precondition_1d=precondition_1d, normalize_grads=normalize_grads, correct_bias=correct_bias)
        super().__init__(params, defaults)

    def _check_group(self, group: dict, index: int) -> None:
        super()._check_group(group, index)
        where = f"SOAP (param group {index})"
        sb = group["shampoo_beta"]
        if sb is not None and not 0 <= sb < 1:
            raise ValueError(f"{where}: shampoo_beta={sb!r} must be in [0, 1), or None to use betas[1].")
        for key in ("precondition_frequency", "max_precond_dim"):
            if not (isinstance(group[key], int) and group[key] >= 1):
                raise ValueError(f"{where}: {key}={group[key]!r} must be a positive integer.")

    @staticmethod
    def _sides(shape: tuple[int, int], group: dict, is_1d: bool) -> tuple[bool, bool]:
        """Which of (left, right) carry a preconditioner for a tensor viewed as ``shape``."""
        m, n = shape
        left = not is_1d and m <= group["max_precond_dim"]
        right = n <= group["max_precond_dim"] and (group["precondition_1d"] or not is_1d)
        return left, right

    @staticmethod
    def _project(x, state, back: bool = False):
        """Q_L^T x Q_R (into the eigenbasis) or Q_L x Q_R^T (``back``), skipping absent sides; x and
        the bases are batches (k, ...) of the same-shape tensors a step takes together."""
        QL, QR = state.get("basis_left"), state.get("basis_right")
        if QL is not None:
            x = torch.bmm(QL if back else QL.mT, x)
        if QR is not None:
            x = torch.bmm(x, QR.mT if back else QR)
        return x

    @staticmethod
    def _accumulate(g, state, beta_s: float) -> None:
        if "precond_left" in state:
            state["precond_left"].lerp_(torch.bmm(g, g.mT), 1 - beta_s)
        if "precond_right" in state:
            state["precond_right"].lerp_(torch.bmm(g.mT, g), 1 - beta_s)

    @staticmethod
    def _refresh(state) -> None:
        """One power step per side, columns sorted by estimated eigenvalue; v follows the sort.
        In place on a batch's packed state: each matrix gets its own order."""
        v = state["exp_avg_sq"]
        for side, dim in (("left", -2), ("right", -1)):
            if f"precond_{side}" not in state:
                continue
            P, Q = state[f"precond_{side}"], state[f"basis_{side}"]
            PQ = torch.bmm(P, Q)  # one product serves the eigenvalue estimates and the power step
            order = torch.argsort((Q * PQ).sum(-2), dim=-1, descending=True, stable=True)  # (k, size): diag(Q^T P Q)
            v.copy_(v.gather(dim, order.unsqueeze(-1 if dim == -2 else -2).expand_as(v)))
            Q.copy_(torch.linalg.qr(PQ.gather(-1, order.unsqueeze(-2).expand_as(PQ))).Q)

    KEYS = ("exp_avg", "exp_avg_sq", "precond_left", "precond_right", "basis_left", "basis_right")

    def _update_group(self, items, group):
        # Tensors of the same (flattened) shape and step count take the step together, as one
        # batch: one set of kernel launches on a GPU instead of one per tensor (the state lives
        # packed, see `packed_state`); each gets exactly what it would alone.
        def view(g):
            return (1, g.numel()) if g.dim() == 1 else (g.size(0), g[0].numel())

        for batch in same_shape_batches(items, lambda item: view(item[1]),
                                        tag=lambda item: (item[1].dim() == 1, item[2].get("step", -1))):
            G = stack([g.reshape(view(g)) for _, g, _ in batch])
            self._batch_step([w for w, _, _ in batch], G, [s for _, _, s in batch], group, batch[0][1].dim() == 1)

    def _batch_step(self, ws, G, states, group, is_1d: bool):
        """One SOAP step of k tensors of the same shape, gradients G (k, a, b) (1-D: a = 1)."""
        beta1, beta2 = group["betas"]
        beta_s = beta2 if group["shampoo_beta"] is None else group["shampoo_beta"]
        _, a, b = G.shape
        if not states[0]:  # first call: build the preconditioner only, the batch's state packed
            shapes = {"exp_avg": (a, b), "exp_avg_sq": (a, b)}
            for side, on, size in zip(("left", "right"), self._sides((a, b), group, is_1d), (a, b)):
                if on:
                    shapes[f"precond_{side}"] = shapes[f"basis_{side}"] = (size, size)
            init_packed(states, shapes, G)
            packed = {key: packed_state(states, key) for key in shapes}
            self._accumulate(G, packed, beta_s)
            for side in ("left", "right"):
                if f"precond_{side}" in packed:
                    packed[f"basis_{side}"].copy_(eigenbasis(packed[f"precond_{side}"]))
            for st in states:
                st["step"] = 0
            return

        packed = {key: packed_state(states, key) for key in self.KEYS if key in states[0]}
        t = states[0]["step"] + 1
        for st in states:
            st["step"] = t
        m, v = packed["exp_avg"], packed["exp_avg_sq"]
        gp = self._project(G, packed)
        m.mul_(beta1).add_(gp, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(gp, gp, value=1 - beta2)
        update = self._project(m / v.sqrt().add_(group["eps"]), packed, back=True)
        if group["normalize_grads"]:  # update is a fresh tensor
            update.div_(1e-30 + update.square().mean(dim=(-2, -1), keepdim=True).sqrt())
        step_size = group["lr"]
        if group["correct_bias"]:
            step_size *= (1 - beta2**t) ** 0.5 / (1 - beta1**t)
        torch._foreach_add_(ws, [u.view(w.shape) for w, u in zip(ws, update)], alpha=-step_size)
        if group["weight_decay"]:
            torch._foreach_add_(ws, ws, alpha=-group["lr"] * group["weight_decay"])

        self._accumulate(G, packed, beta_s)
        if t % group["precondition_frequency"] == 0 and ("precond_left" in packed or "precond_right" in packed):
            m_orig = self._project(m, packed, back=True)
            self._refresh(packed)
            m.copy_(self._project(m_orig, packed))
