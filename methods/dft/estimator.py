"""DFT's per-prompt estimator of the partition term, in log space (spec ../shared/papers/dft.md §2.3).

For prompt i with m negatives y'_ij, the log-weights ("diffs") are

    DFT :  d_ij = lp(y'_ij)/tau - lp_ref(y'_ij)          (importance weight of pi_ref as the proposal)
    DFT2:  d_ij = (lp(y'_ij)/|y'_ij|)/tau                 (no reference: the sampled set is the proposal)

the mini-batch estimate is log g_i = logmeanexp_j d_ij, and the moving average keeps, in log space,

    log u_i <- logaddexp(log(1-gamma) + log u_i, log gamma + log g_i)      (u <- (1-gamma) u + gamma g)
    (gamma = 1: log u_i <- log g_i, the old value ignored)

gamma weights the *fresh* estimate (the official code's convention). The weights of the negatives are
w_ij = exp(d_ij - log u_i) (detached, not normalised), and the surrogate loss per prompt is

    l_i = -s(y_i) + (1/m) sum_j w_ij s(y'_ij),   s = lp (DFT) or lp/len (DFT2);   loss = mean_i l_i

whose gradient is the algorithm's gradient estimator (its value is not the objective F).
"""
from __future__ import annotations

import math

import torch


def log_diffs(lp_neg: torch.Tensor, len_neg: torch.Tensor, ref_neg: torch.Tensor | None, tau: float,
              reference_free: bool) -> torch.Tensor:
    """``(B, m)`` detached log-weights d_ij of the negatives (see the module docstring)."""
    if reference_free:
        return (lp_neg / len_neg / tau).detach()
    return (lp_neg / tau - ref_neg).detach()


def moving_average(log_u_old: torch.Tensor, d: torch.Tensor, gamma: float) -> torch.Tensor:
    """``(B,)`` new log u: the log-space moving average of u with the fresh estimate mean_j exp(d_ij)."""
    log_g = torch.logsumexp(d, dim=1) - math.log(d.shape[1])
    if gamma == 1.0:
        return log_g
    return torch.logaddexp(math.log(1.0 - gamma) + log_u_old, math.log(gamma) + log_g)


def surrogate_loss(s_pos: torch.Tensor, s_neg: torch.Tensor, d: torch.Tensor, log_u_new: torch.Tensor):
    """(loss, weights): mean_i [-s_pos_i + mean_j w_ij s_neg_ij] with w = exp(d - log u_new) detached."""
    w = torch.exp(d - log_u_new[:, None]).detach()
    return (-s_pos + (w * s_neg).mean(1)).mean(), w


class LogUTable:
    """log u (initialised to ``u_init`` = 0, i.e. u = 1) and the visited mask, one float each per
    training prompt (2n floats), indexed by the batches' stable ``prompt_id``. Grows on demand."""

    def __init__(self, u_init: float = 0.0):
        self.u_init = u_init
        self.log_u = torch.zeros(0)
        self.mask = torch.zeros(0)

    def _grow(self, n: int) -> None:
        if n > self.log_u.numel():
            k = n - self.log_u.numel()
            self.log_u = torch.cat([self.log_u, torch.full((k,), float(self.u_init))])
            self.mask = torch.cat([self.mask, torch.zeros(k)])

    def get(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long().cpu()
        self._grow(int(ids.max()) + 1 if ids.numel() else 0)
        return self.log_u[ids]

    def set(self, ids: torch.Tensor, values: torch.Tensor) -> None:
        ids = ids.long().cpu()
        self._grow(int(ids.max()) + 1 if ids.numel() else 0)
        self.log_u[ids] = values.detach().float().cpu()
        self.mask[ids] = 1.0

    def state_dict(self) -> dict:
        return {"log_u": self.log_u.clone(), "u_mask": self.mask.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.log_u = torch.as_tensor(state["log_u"], dtype=torch.float32).clone()
        self.mask = torch.as_tensor(state["u_mask"], dtype=torch.float32).clone()
        if self.log_u.shape != self.mask.shape:
            raise ValueError(f"DFT state: log_u {tuple(self.log_u.shape)} and u_mask {tuple(self.mask.shape)} differ "
                             "in size: the checkpoint is corrupt.")


def all_gather_updates(ids: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Under DDP: every process's (prompt ids, new log u) of this step, merged; an id updated by several
    processes gets the mean of their log values (the official epoch-end sync, sum(log u * mask) /
    sum(mask), applied to the step's updates). Without a process group: the inputs unchanged."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return ids, values
    world = dist.get_world_size()
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    n = torch.tensor([ids.numel()], dtype=torch.long, device=dev)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    width = int(max(s.item() for s in sizes))
    pad_ids = torch.full((width,), -1, dtype=torch.long, device=dev)
    pad_val = torch.zeros(width, dtype=torch.float64, device=dev)
    pad_ids[: ids.numel()] = ids.long().to(dev)
    pad_val[: ids.numel()] = values.detach().double().to(dev)
    all_ids = [torch.empty_like(pad_ids) for _ in range(world)]
    all_val = [torch.empty_like(pad_val) for _ in range(world)]
    dist.all_gather(all_ids, pad_ids)
    dist.all_gather(all_val, pad_val)
    flat_ids, flat_val = torch.cat(all_ids).cpu(), torch.cat(all_val).cpu()
    keep = flat_ids >= 0
    flat_ids, flat_val = flat_ids[keep], flat_val[keep]
    uniq, inverse = torch.unique(flat_ids, return_inverse=True)
    total = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, flat_val)
    count = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(flat_val))
    return uniq, (total / count).float()
