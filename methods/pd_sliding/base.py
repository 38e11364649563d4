"""What every decentralised solver shares: the network, the counters, the metrics, the state.

Subclasses implement ``_iterate()`` (one iteration; outer iteration for two-level methods),
``output()`` (the point they report, one row per local worker) and list their per-worker state
tensors in ``_worker_state`` and scalars in ``_shared_state``.
"""
from __future__ import annotations

import math
from abc import abstractmethod

import torch

from reprolab.checks import ConfigError
from reprolab.roles import Solver
from methods.pd_sliding.network import GlooNetwork, SimulatedNetwork
from methods.pd_sliding.problems import FiniteSumProblem


def make_network(problem: FiniteSumProblem, ctx):
    """All workers here (one process), or this process's worker over gloo (one process per worker)."""
    dev, dt = problem.A.device, problem.A.dtype
    if ctx.world_size == 1:
        return SimulatedNetwork(problem.graph, dev, dt)
    if ctx.world_size != problem.m:
        raise ConfigError(f"the distributed backend needs one process per worker: {ctx.world_size} processes for "
                          f"problem.workers={problem.m}.")
    return GlooNetwork(problem.graph, ctx.rank, dev, dt, ctx.timeout_s, ctx.reduce_sum)


class DecentralizedSolver(Solver):
    _worker_state: tuple[str, ...] = ()
    _shared_state: tuple[str, ...] = ()
    centralised = False

    def __init__(self, problem, method, ctx):
        if not isinstance(problem, FiniteSumProblem):
            raise ConfigError(f"method={type(method).__name__.lower()} solves decentralised finite sums "
                              f"(problem=l1_least_squares or libsvm_logistic), not {type(problem).__name__}.")
        if self.centralised and ctx.world_size > 1:
            raise ConfigError(f"method={type(method).__name__.lower()} is centralised: run it with "
                              "runner.backend=simulated.")
        self.p, self.method = problem, method
        self.net = make_network(problem, ctx)
        k, d = len(problem.workers), problem.dim
        self.zeros = lambda: torch.zeros(k, d, dtype=problem.A.dtype, device=problem.A.device)  # noqa: E731
        self.step = 0
        self.grad_evals = 0
        self.samples = 0
        self.lo = torch.zeros(k, dtype=torch.int64)
        self.lo_unconverged = 0
        self.gens = problem.generators()

    # ---- oracles with counting --------------------------------------------------------------
    def gradient(self, x: torch.Tensor, batch: int = 0) -> torch.Tensor:
        """grad f_i(x_i) per local worker: exact for batch = 0, else a mini-batch estimate."""
        self.grad_evals += 1
        if batch <= 0:
            self.samples += self.p.min_count
            return self.p.grad(x)
        g, drawn = self.p.stochastic_grad(x, batch, self.gens)
        self.samples += drawn
        return g

    def batch_size(self, t: int) -> int:
        """``ceil(batch0 t^batch_power)`` (0: exact gradients)."""
        b0 = self.method.batch0
        return 0 if b0 <= 0 else int(math.ceil(b0 * t ** self.method.batch_power))

    # ---- Solver -----------------------------------------------------------------------------
    @abstractmethod
    def _iterate(self) -> None:
        """One iteration (one outer iteration for the sliding methods)."""

    @abstractmethod
    def output(self) -> torch.Tensor:
        """The point the method reports, (local workers, dim)."""

    def advance(self, steps: int) -> None:
        for _ in range(steps):
            self._iterate()
            self.step += 1

    def metrics(self) -> dict[str, float]:
        p, net = self.p, self.net
        x = self.output()
        mean = net.sum_workers(x.sum(dim=0, keepdim=True)) / p.m
        F = float(net.sum_workers(p.values(mean.expand_as(x)).sum().reshape(1)))
        cons = float(net.sum_workers((x * net.lap(x, count=False)).sum().reshape(1)))
        # largest ||x_i|| - radius of each process, summed over processes: 0 iff every x_i is in X
        excess = torch.clamp(p.X.norm(x) - getattr(p.X, "radius", math.inf), min=0).max().reshape(1)
        excess = float(net.sum_workers(excess))
        f_star = p.reference.f_star if p.reference is not None else math.nan
        return {
            "F": F,
            "gap": F - f_star,
            "consensus": math.sqrt(max(cons, 0.0)),
            "infeasibility": excess,
            "grad_evals": self.grad_evals,
            "samples": self.samples,
            "lo_calls": int(net.sum_workers(self.lo.sum().reshape(1))),
            "comm_rounds": net.rounds,
            "lo_unconverged": self.lo_unconverged,
        }

    def state_dict(self) -> dict:
        worker = {k: getattr(self, k) for k in self._worker_state}
        worker["lo"] = self.lo
        worker["rng"] = torch.stack([g.get_state() for g in self.gens])
        shared = {k: getattr(self, k) for k in self._shared_state}
        shared.update(step=self.step, grad_evals=self.grad_evals, samples=self.samples, rounds=self.net.rounds,
                      lo_unconverged=self.lo_unconverged)
        return {"worker": worker, "shared": shared}

    def load_state_dict(self, state: dict) -> None:
        w, sh = state["worker"], state["shared"]
        dev, dt = self.p.A.device, self.p.A.dtype
        for k in self._worker_state:
            setattr(self, k, w[k].to(dev, dt))
        self.lo = w["lo"].clone()
        for g, s in zip(self.gens, w["rng"]):
            g.set_state(s.clone())
        for k in self._shared_state:
            setattr(self, k, sh[k])
        self.step, self.grad_evals, self.samples = sh["step"], sh["grad_evals"], sh["samples"]
        self.net.rounds, self.lo_unconverged = sh["rounds"], sh["lo_unconverged"]
