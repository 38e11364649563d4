"""pd_sliding and its baselines against the math (spec pd_sliding.md §6) and independent references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from methods.pd_sliding import CGSConfig, DPGConfig, DeFWConfig, L1Ball, L1LeastSquares, NuclearBall, PDSlidingConfig, cndg, make_graph
from methods.pd_sliding.config import ConstraintSpec, GraphSpec
from methods.pd_sliding.network import SimulatedNetwork
from reprolab.checks import ConfigError
from tests.numeric.helpers import context

G = torch.Generator().manual_seed(0)


def randn(*shape):
    return torch.randn(*shape, generator=G, dtype=torch.float64)


def toy(tmp_path, **kw):
    return L1LeastSquares(**kw).build(context(tmp_path))


def solver(tmp_path, method, **problem):
    ctx = context(tmp_path)
    return method.build_solver(L1LeastSquares(**problem).build(ctx), ctx)


def l1_project_bisection(c: np.ndarray, rho: float) -> np.ndarray:
    """Independent reference: soft-threshold at the theta solving sum max(|c| - theta, 0) = rho."""
    if np.abs(c).sum() <= rho:
        return c
    lo, hi = 0.0, np.abs(c).max()
    for _ in range(200):
        theta = 0.5 * (lo + hi)
        lo, hi = (theta, hi) if np.maximum(np.abs(c) - theta, 0).sum() > rho else (lo, theta)
    return np.sign(c) * np.maximum(np.abs(c) - 0.5 * (lo + hi), 0)


# ---- §6.3 LO oracles ----------------------------------------------------------------------------
def test_l1_lo_is_a_signed_vertex_and_minimises_the_linear_form():
    X, g = L1Ball(2.5), randn(6, 30)
    v = X.lo(g)
    assert torch.equal((v != 0).sum(dim=1), torch.ones(6, dtype=torch.int64))
    torch.testing.assert_close(v.abs().sum(dim=1), torch.full((6,), 2.5, dtype=torch.float64))
    feasible = X.project(3 * randn(6, 30))
    assert bool(((g * v).sum(1) <= (g * feasible).sum(1) + 1e-12).all())
    torch.testing.assert_close((g * v).sum(1), -2.5 * g.abs().max(dim=1).values)


def test_nuclear_lo_is_rank_one_with_norm_rho_and_minimises_the_linear_form():
    X, g = NuclearBall(1.5, (5, 6)), randn(4, 30)
    v = X.lo(g)
    mats = v.reshape(4, 5, 6)
    sv = torch.linalg.svdvals(mats)
    assert bool((sv[:, 1] < 1e-12).all())
    torch.testing.assert_close(X.norm(v), torch.full((4,), 1.5, dtype=torch.float64))
    for _ in range(20):
        other = X.project(randn(4, 30))
        assert bool(((g * v).sum(1) <= (g * other).sum(1) + 1e-12).all())


def test_oracles_treat_rows_independently():
    g = randn(5, 30)
    for X in (L1Ball(1.0), NuclearBall(1.0, (5, 6))):
        rows = torch.cat([X.lo(g[i:i + 1]) for i in range(5)])
        assert torch.equal(rows, X.lo(g))


def test_l1_projection_matches_bisection_reference():
    c = 0.5 * randn(8, 30)
    for rho in (0.1, 1.0, 100.0):
        ours = L1Ball(rho).project(c).numpy()
        ref = np.stack([l1_project_bisection(row, rho) for row in c.numpy()])
        np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_nuclear_projection_is_feasible_and_optimal():
    X, c = NuclearBall(1.0, (5, 6)), 2 * randn(3, 30)
    P = X.project(c)
    assert bool((X.norm(P) <= 1 + 1e-10).all())
    for _ in range(20):  # variational inequality <c - P, v - P> <= 0 for every feasible v
        v = X.project(randn(3, 30))
        assert bool((((c - P) * (v - P)).sum(1) <= 1e-10).all())


# ---- §6.2 CndG vs the exact projection ----------------------------------------------------------
def test_cndg_reaches_the_exact_projection_within_its_tolerance():
    X = L1Ball(1.0)
    c, beta = randn(6, 30), torch.tensor([0.5, 1.0, 2.0, 5.0, 10.0, 50.0], dtype=torch.float64)
    delta = torch.tensor([1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8], dtype=torch.float64)
    w, calls, stuck = cndg(c, beta, torch.zeros(6, 30, dtype=torch.float64), X, delta, 10 ** 6)
    P = X.project(c)
    phi = lambda x: 0.5 * beta * ((x - c) ** 2).sum(1)  # noqa: E731
    assert not bool(stuck.any()) and bool((calls >= 1).all())
    assert bool((phi(w) - phi(P) <= delta * (1 + 1e-9)).all())
    assert bool((((w - P) ** 2).sum(1) <= 2 * delta / beta * (1 + 1e-9)).all())  # strong convexity
    assert bool((X.norm(w) <= 1 + 1e-12).all())


def test_cndg_rows_do_not_depend_on_their_neighbours():
    X, c, w0 = L1Ball(1.0), randn(4, 30), torch.zeros(4, 30, dtype=torch.float64)
    together, _, _ = cndg(c, 3.0, w0, X, 1e-6, 10 ** 5)
    alone = torch.cat([cndg(c[i:i + 1], 3.0, w0[i:i + 1], X, 1e-6, 10 ** 5)[0] for i in range(4)])
    assert torch.equal(together, alone)


# ---- graphs and networks ------------------------------------------------------------------------
def test_graphs_laplacian_and_metropolis():
    assert make_graph("ring", 8).laplacian_norm() == pytest.approx(4.0)
    grid = make_graph("grid", 8)
    assert sorted(grid.degree.tolist()) == [2, 2, 2, 2, 3, 3, 3, 3]  # 2 x 4
    assert make_graph("complete", 5).laplacian_norm() == pytest.approx(5.0)
    for g in (make_graph("ring", 7), grid, make_graph("erdos_renyi", 12, p=0.4, seed=1), make_graph("complete", 4)):
        w_self, w_nb = g.metropolis()
        W = np.diag(w_self)
        for i, nb in enumerate(g.neighbors):
            W[i, list(nb)] = w_nb[i, : len(nb)]
        np.testing.assert_allclose(W, W.T, atol=1e-15)
        np.testing.assert_allclose(W.sum(1), 1.0, atol=1e-15)
        assert (W >= 0).all()


def test_laplacian_kills_consensus_vectors_and_network_matches_dense():
    g = make_graph("erdos_renyi", 9, p=0.5, seed=3)
    net = SimulatedNetwork(g, "cpu", torch.float64)
    v = randn(1, 7).expand(9, 7)
    assert float(net.lap(v).abs().max()) < 1e-14 * float(v.abs().max()) * 9
    u = randn(9, 7)
    Lg = torch.as_tensor(g.laplacian())
    torch.testing.assert_close(net.lap(u), Lg @ u, rtol=0, atol=1e-13)
    assert net.rounds == 2 and net.lap(u, count=False) is not None and net.rounds == 2


def test_disconnected_graph_is_refused():
    with pytest.raises(ConfigError, match="disconnected"):
        make_graph("erdos_renyi", 10, p=0.05, seed=0)
    with pytest.raises(ConfigError, match="disconnected"):
        L1LeastSquares(graph=GraphSpec(kind="erdos_renyi", p=0.05)).build(context("/tmp"))


# ---- §6.1 PDS with X = R^d and exact projection is the reference PDS ---------------------------
def reference_pds(A, b, Lap, L, R, N):
    """Lan–Ouyang–Zhou PDS on stacked vectors with a dense Laplacian (numpy; the structure of their
    public reference code: weighted output of x_hat with weights k)."""
    m, n, d = A.shape
    Lk = np.kron(Lap, np.eye(d))
    grad = lambda x: np.einsum("mni,mn->mi", A, np.einsum("mni,mi->mn", A, x.reshape(m, d)) - b).ravel()  # noqa
    x_prev = x_pp = x_hat = x_und = x_pen = np.zeros(m * d)
    z, wsum, bsum, prev_b, prev_T = np.zeros(m * d), np.zeros(m * d), 0.0, 0.0, 0
    a_norm = np.linalg.eigvalsh(Lap)[-1]
    for k in range(1, N + 1):
        tau, lam, beta, p, T = (k - 1) / 2, (k - 1) / k, k, 2 * L / k, math.ceil(k * R * a_norm / L)
        x_und = (x_prev + lam * (x_hat - x_pp) + tau * x_und) / (1 + tau)
        y = grad(x_und)
        cur, last, xs = x_prev, x_pen, np.zeros(m * d)
        for t in range(1, T + 1):
            eta, q = p * (t - 1) + p * T, L * T / (2 * beta * R ** 2)
            a = prev_b * T / (beta * prev_T) if (k >= 2 and t == 1) else 1.0
            z = z + Lk @ (cur + a * (cur - last)) / q
            nxt = (eta * cur + p * x_prev - (y + Lk @ z)) / (eta + p)
            last, cur = cur, nxt
            xs += cur
        x_pp, x_prev, x_pen, x_hat = x_prev, cur, last, xs / T
        wsum, bsum, prev_b, prev_T = wsum + beta * x_hat, bsum + beta, beta, T
    return (wsum / bsum).reshape(m, d), z.reshape(m, d)


def test_unconstrained_exact_pds_equals_reference_and_reaches_the_centralised_optimum(tmp_path):
    spec = dict(workers=5, dim=6, samples_per_worker=8, sparsity=2, constraint=ConstraintSpec(kind="none"),
                graph=GraphSpec(kind="ring"))
    s = solver(tmp_path, PDSlidingConfig(inner="exact", R=0.5), **spec)
    s.advance(12)
    p = s.p
    ref_x, ref_z = reference_pds(p.A.numpy(), p.y.numpy(), p.graph.laplacian(), p.L, 0.5, 12)
    np.testing.assert_allclose(s.output().numpy(), ref_x, rtol=0, atol=1e-11)
    np.testing.assert_allclose(s.z.numpy(), ref_z, rtol=0, atol=1e-11)
    s.advance(150)
    A_all, b_all = p.A.reshape(-1, p.dim).numpy(), p.y.reshape(-1).numpy()
    x_ls = np.linalg.lstsq(A_all, b_all, rcond=None)[0]
    np.testing.assert_allclose(s.output().numpy(), np.tile(x_ls, (5, 1)), atol=1e-4)
    assert s.metrics()["gap"] < 1e-7


# ---- §6.4 feasibility of every iterate, §6.5 dual sums, §6.6 counts ----------------------------
def test_every_iterate_is_feasible_and_dual_sum_stays_zero(tmp_path, monkeypatch):
    import methods.pd_sliding.pds as pds

    seen = []

    def checked(c, beta, w, X, delta, max_iter):
        assert bool((X.norm(w) <= X.radius * (1 + 1e-12)).all()), "infeasible warm start"
        out = cndg(c, beta, w, X, delta, max_iter)
        seen.append(float((X.norm(out[0]) - X.radius).max()))
        return out

    monkeypatch.setattr(pds, "cndg", checked)
    s = solver(tmp_path, PDSlidingConfig())
    for _ in range(8):
        s.advance(1)
        assert float(s.z.sum(dim=0).abs().max()) < 1e-12  # sum_i z_i invariant (z_0 = 0)
        for x in (s.x_prev, s.x_hat, s.output()):
            assert float(s.p.X.norm(x).max()) <= 1 + 1e-12
    assert max(seen) <= 1e-12 and len(seen) == sum(s.inner_steps(k) for k in range(1, 9))
    m = s.metrics()
    assert m["grad_evals"] == 8 and m["comm_rounds"] == 2 * len(seen) and m["infeasibility"] == 0.0


def test_nuclear_constrained_pds_stays_feasible(tmp_path):
    s = solver(tmp_path, PDSlidingConfig(), workers=4, dim=30, constraint=ConstraintSpec(kind="nuclear", radius=1.0,
                                                                                    shape=[5, 6]))
    gap0 = s.metrics()["gap"]
    s.advance(5)
    assert float(s.p.X.norm(s.output()).max()) <= 1 + 1e-10
    assert s.metrics()["gap"] < 0.5 * gap0


def test_deterministic_toy_gap_decays_like_one_over_k_squared(tmp_path):
    """§6.6 at CI size: the spec's toy for k = 6..30 (the full k = 10..60 run is the experiment)."""
    s = solver(tmp_path, PDSlidingConfig())
    ks, gaps = [], []
    for k in range(1, 31):
        s.advance(1)
        if k >= 6:
            ks.append(k)
            gaps.append(s.metrics()["gap"])
    slope = float(np.polyfit(np.log(ks), np.log(gaps), 1)[0])
    assert -2.3 <= slope <= -1.7, slope
    assert s.grad_evals == 30 and s.net.rounds == 2 * sum(s.inner_steps(k) for k in range(1, 31))


# ---- §6.7 DeFW on a complete graph is centralised Frank–Wolfe ---------------------------------
def test_defw_on_complete_graph_is_centralised_frank_wolfe(tmp_path):
    s = solver(tmp_path, DeFWConfig(), workers=5, graph=GraphSpec(kind="complete"))
    p = s.p
    A, b = p.A.reshape(-1, p.dim), p.y.reshape(-1)
    x = torch.zeros(1, p.dim, dtype=torch.float64)
    for t in range(1, 41):
        s.advance(1)
        grad = (A.T @ (A @ x[0] - b)).unsqueeze(0)
        x = x + 2.0 / (t + 1) * (p.X.lo(grad) - x)
        torch.testing.assert_close(s.x, x.expand(5, -1), rtol=0, atol=1e-10)


def test_defw_and_dpg_converge_on_the_toy(tmp_path):
    defw = solver(tmp_path, DeFWConfig())
    defw.advance(200)
    dpg = solver(tmp_path, DPGConfig())
    dpg.advance(200)
    assert defw.metrics()["gap"] < 1e-3 and defw.metrics()["comm_rounds"] == 400
    assert dpg.metrics()["infeasibility"] < 1e-12 and dpg.metrics()["gap"] < 0.05


def test_centralised_cgs_converges_like_one_over_k_squared(tmp_path):
    """Lan & Zhou 2016, Thm 2.2: F(y_k) - F* <= 15 L D^2 / (2 (k+1)(k+2)) with these parameters."""
    s = solver(tmp_path, CGSConfig())
    bound = lambda k: 15 * s.p.L_total * s.p.X.diameter ** 2 / (2 * (k + 1) * (k + 2))  # noqa: E731
    s.advance(20)
    g20 = s.metrics()["gap"]
    s.advance(40)
    m = s.metrics()
    assert g20 <= bound(20) and m["gap"] <= bound(60) and m["gap"] < g20 / 3
    assert m["consensus"] == 0.0 and m["comm_rounds"] == 0 and m["grad_evals"] == 60


# ---- stochastic oracle and mini-batches ---------------------------------------------------------
def test_minibatch_gradient_is_unbiased_and_exact_at_full_batch(tmp_path):
    p = toy(tmp_path, samples_per_worker=20)
    x, gens = 0.1 * randn(8, 30), p.generators()
    est = torch.stack([p.stochastic_grad(x, 5, gens)[0] for _ in range(4000)]).mean(0)
    full = p.grad(x)
    assert float((est - full).norm() / full.norm()) < 0.05
    g, drawn = p.stochastic_grad(x, 20, gens)
    assert torch.equal(g, full) and drawn == 20


def test_stochastic_pds_uses_growing_batches(tmp_path):
    s = solver(tmp_path, PDSlidingConfig(batch0=1.0, batch_power=3.0), samples_per_worker=200)
    s.advance(4)
    assert s.samples == 1 + 8 + 27 + 64 and s.metrics()["infeasibility"] == 0.0


# ---- reference solution ------------------------------------------------------------------------
def test_reference_is_certified_cached_and_on_the_boundary(tmp_path, monkeypatch):
    p = toy(tmp_path)
    assert p.reference.fw_gap < 1e-12
    assert float(p.X.norm(p.reference.x_star.unsqueeze(0))) == pytest.approx(1.0, abs=1e-9)
    import methods.pd_sliding.reference as ref

    monkeypatch.setattr(ref, "fista", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    assert toy(tmp_path).reference.f_star == p.reference.f_star


# ---- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("radius", [0.0, -1.0])
def test_nonpositive_radius_is_refused(radius):
    with pytest.raises(ConfigError, match=f"radius={radius}"):
        L1LeastSquares(constraint=ConstraintSpec(radius=radius))


def test_bad_nuclear_shape_is_refused():
    with pytest.raises(ConfigError, match="shape"):
        L1LeastSquares(dim=30, constraint=ConstraintSpec(kind="nuclear", shape=[4, 4]))


def test_projection_free_methods_refuse_unbounded_sets(tmp_path):
    with pytest.raises(ConfigError, match="no linear-optimisation oracle"):
        solver(tmp_path, DeFWConfig(), constraint=ConstraintSpec(kind="none"))


@pytest.mark.parametrize("cls,kwargs,match", [(PDSlidingConfig, {"R": 0.0}, "method.R"), (PDSlidingConfig, {"inner": "x"}, "inner"),
                                              (DeFWConfig, {"batch0": -1.0}, "batch0"), (DPGConfig, {"schedule": "x"}, "schedule")])
def test_bad_method_values_are_refused(cls, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)
