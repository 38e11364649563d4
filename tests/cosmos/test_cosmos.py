"""COSMOS against the math and the official algorithm (cosmos.md §6, properties 1-14)."""
import copy
import math

import pytest
import torch

import methods.cosmos.optimizer as cosmos_module
from reprolab.kernels.cosmos.reference import NS5_COEFFS, newton_schulz5
from methods.cosmos import COSMOS
from tests.cosmos.official_reference import official_step


def _g(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _low_rank_grad(m=48, n=32, seed=0):
    """A gradient with a decaying spectrum (distinct singular values), so subspaces are well defined."""
    U, _ = torch.linalg.qr(_g(m, n, seed=seed))
    V, _ = torch.linalg.qr(_g(n, n, seed=seed + 1))
    s = torch.logspace(1, -2, n)
    return U @ torch.diag(s) @ V.T


SPACES = ("full", "complement")  # where Newton-Schulz runs (ns_space); auto picks full for these small shapes


def _cosmos(w, **kw):
    kw = {"rank": 4, "lr": 1e-2, "ns_dtype": "float32", **kw}
    return COSMOS(w if isinstance(w, list) else [w], **kw)


def _step(opt, w, grad):
    w.grad = grad.clone()
    before = w.detach().clone()
    opt.step()
    return w.detach() - before


# ---- 1. parity with the official 2026 algorithm ---------------------------------------------
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_parity_with_official_code(dtype, tol):
    """Linear 96x64 + bias + a 12000x4 embedding, rank 8, 30 steps, NS5 in the params' dtype.

    float64 shows the algorithm is the official one (measured 1.9e-15). float32 rounding is
    amplified by this problem's power iterations: our fused GEMMs associate the Nesterov mix, the
    residual and the NS5 axpys differently from the official code, and equivalent associations
    land between 5e-7 and 1.1e-6 here (measured 5.3e-7 for ours; the spec's target is 1e-6), so
    the float32 bound is 2e-6.
    """
    torch.manual_seed(0)
    lin, emb = torch.nn.Linear(64, 96).to(dtype), torch.nn.Embedding(12000, 4).to(dtype)
    params = [lin.weight, lin.bias, emb.weight]
    ref_params = [p.detach().clone() for p in params]
    hp = dict(lr=2e-3, betas=(0.95, 0.95), eps=1e-8, weight_decay=0.1, lr_ratio=0.2, gamma=0.2, rank=8)
    opt = COSMOS(params, parity=True, ns_dtype=dtype, **hp)
    ref_states = [{} for _ in params]
    x = _g(32, 64, seed=1).to(dtype)
    idx = torch.randint(0, 12000, (32,), generator=torch.Generator().manual_seed(2))
    for step in range(30):
        opt.zero_grad()
        ((lin(x * (1 + step / 10)) ** 2).mean() + emb(idx).sin().sum()).backward()
        grads = [p.grad.clone() for p in params]
        opt.step()
        for p, g, s in zip(ref_params, grads, ref_states):
            official_step(p, g, s, ns_dtype=dtype, **hp)
    for p, ref in zip(params, ref_params):
        assert (p.detach() - ref).abs().max() <= tol
    assert opt.state[lin.weight]["exp_avg_sq"].shape == (96, 8)  # the matrix really took the COSMOS branch


# ---- 2. update norm invariant ----------------------------------------------------------------
@pytest.mark.parametrize("ns_space", SPACES)
@pytest.mark.parametrize("shape", [(48, 32), (20, 60)])
def test_update_norm_is_lr_ratio_sqrt_mn(shape, ns_space):
    m, n = shape
    steps = []
    for grad_scale in (1.0, 1000.0):
        w = torch.nn.Parameter(_g(m, n))
        opt = _cosmos(w, lr=3e-3, lr_ratio=0.2, ns_space=ns_space)
        steps.append([_step(opt, w, _g(m, n, seed=s) * grad_scale) for s in range(5)])
    for d in steps[0]:
        assert d.norm().item() == pytest.approx(3e-3 * 0.2 * math.sqrt(m * n), rel=1e-5)
    for d, d_scaled in zip(*steps):  # the step does not depend on the gradient's scale
        assert (d - d_scaled).norm() <= 1e-4 * d.norm()


# ---- 3. orthonormal basis --------------------------------------------------------------------
@pytest.mark.parametrize("ns_space", SPACES)
def test_basis_stays_orthonormal(ns_space):
    w = torch.nn.Parameter(_g(48, 32))
    opt = _cosmos(w, rank=6, ns_space=ns_space)
    for s in range(10):
        _step(opt, w, _g(48, 32, seed=s))
        U = opt.state[w]["basis"]
        assert (U.T @ U - torch.eye(6)).abs().max() <= 1e-5


# ---- 4. step-1 spectrum ----------------------------------------------------------------------
def test_step_one_basis_is_top_singular_subspace():
    G = _low_rank_grad()
    w = torch.nn.Parameter(_g(48, 32))
    opt = _cosmos(w, rank=5, betas=(0.9, 0.95))
    _step(opt, w, G)
    U, S = opt.state[w]["basis"], opt.state[w]["gram"]
    _, sigma, Vh = torch.linalg.svd(G)
    for v in Vh[:5]:
        assert (v - U @ (U.T @ v)).norm() <= 1e-4
    expected = 0.05 * torch.diag(sigma[:5] ** 2)
    assert (S - expected).abs().max() <= 1e-4 * sigma[0] ** 2


# ---- 5. residual orthogonal to the subspace --------------------------------------------------
def test_residual_is_orthogonal_to_basis(monkeypatch):
    seen = []
    monkeypatch.setattr(cosmos_module, "newton_schulz5", lambda R, *a, **k: seen.append(R.clone()) or newton_schulz5(R, *a))
    w = torch.nn.Parameter(_g(48, 32))
    opt = _cosmos(w, rank=6, ns_space="full")  # the complement's Newton-Schulz never sees span(U): next test
    for s in range(4):
        _step(opt, w, _g(48, 32, seed=s))
        U = opt.state[w]["basis"]
        assert (seen[-1] @ U).norm() <= 1e-5 * seen[-1].norm()
    assert len(seen) == 4


@pytest.mark.parametrize("ns_space, tol", [("full", 1e-5), ("complement", 1e-12)])
def test_update_within_the_basis_is_the_adaptive_part(ns_space, tol):
    """dW U = -c D (c > 0 the normalisation): the Muon part B is orthogonal to span(U), so within
    span(U) the step is the SOAP part alone (cosmos.md §2.4). fp64 parameters, Newton-Schulz in fp32:
    on the full m x n residual its fp32 rounding leaks into span(U) (~2e-6 measured); in the
    complement it never reaches it (~1e-14)."""
    m, n, r, (beta1, beta2) = 48, 32, 6, (0.9, 0.95)
    w = torch.nn.Parameter(_g(m, n).double())
    opt = _cosmos(w, rank=r, betas=(beta1, beta2), ns_space=ns_space)
    for t in range(1, 6):
        G = _g(m, n, seed=t).double()
        d = _step(opt, w, G)
        st = opt.state[w]
        U, b1 = st["basis"], (1 - beta1**t) / (1 - beta1)
        Ghat = (G + beta1 * st["exp_avg"]) / (1 + beta1 * b1)
        D = Ghat @ U / ((st["exp_avg_sq"] / (1 - beta2**t)).sqrt() + 1e-8)
        c = -(d @ U * D).sum() / (D * D).sum()
        assert c > 0
        if t > 1:  # step 1 takes the full path whatever ns_space says (its basis comes from eigh)
            assert (d @ U + c * D).norm() <= tol * (d @ U).norm()


def test_complement_space_steps_like_full_space():
    """Newton-Schulz on R W (m x (n - r)) mapped back by W^T gives the full path's update: fp64
    throughout (Newton-Schulz too), square, tall, wide with m > n - r, rank = n (empty complement),
    a batch of two, with and without Nesterov, weight decay; 6 steps."""
    cases = [((24, 24), 6, {}), ((40, 24), 4, {"nesterov": False}), ((20, 28), 12, {"weight_decay": 0.1}),
             ((24, 8), 8, {}), ((30, 30), 5, {"betas": (0.9, 0.99)})]
    for (m, n), r, kw in cases:
        ws = {}
        for space in SPACES:
            ws[space] = [torch.nn.Parameter(_g(m, n, seed=k).double()) for k in range(2)]
            opt = _cosmos(ws[space], rank=r, ns_dtype=torch.float64, ns_space=space, **kw)
            for t in range(6):
                for k, w in enumerate(ws[space]):
                    w.grad = _g(m, n, seed=10 * t + k).double()
                opt.step()
        for k, (full, comp) in enumerate(zip(ws["full"], ws["complement"])):
            start = _g(m, n, seed=k).double()
            assert (full - comp).abs().max() <= 1e-12 * (full - start).abs().max(), (m, n, r, kw)


def test_ns_space_auto_takes_the_complement_where_it_pays(monkeypatch):
    from methods.cosmos.optimizer import complement_pays

    # measured on one CPU core (complement_pays): square and tall from ~128 x 128, never m <= n - r
    assert complement_pays(256, 256, 64) and complement_pays(2048, 768, 64) and complement_pays(128, 128, 32)
    assert not complement_pays(64, 64, 16) and not complement_pays(768, 2048, 64) and not complement_pays(512, 640, 64)
    calls = []
    real = cosmos_module.householder_qr
    monkeypatch.setattr(cosmos_module, "householder_qr", lambda Z: calls.append(Z.shape) or real(Z))
    for kw, complement in [({}, True), ({"parity": True}, False), ({"gamma": 0.0}, False),
                           ({"qr": "cholesky_qr2"}, False), ({"ns_space": "full"}, False)]:
        calls.clear()
        w = torch.nn.Parameter(_g(128, 128))
        opt = COSMOS([w], rank=32, **kw)
        for s in range(3):
            _step(opt, w, _g(128, 128, seed=s))
        assert len(calls) == (2 if complement else 0), kw  # steps 2 and 3 (step 1: eigh)
    calls.clear()
    w = torch.nn.Parameter(_g(48, 32))
    opt = _cosmos(w, ns_space="complement")  # forced where auto would not
    for s in range(2):
        _step(opt, w, _g(48, 32, seed=s))
    assert calls == [(1, 32, 4)]


def test_ns_space_option_is_validated():
    from methods.cosmos.config import CosmosConfig
    from reprolab.checks import ConfigError

    w = torch.nn.Parameter(_g(8, 8))
    with pytest.raises(ValueError, match=r"ns_space='left' is not one of \('auto', 'full', 'complement'\)"):
        COSMOS([w], rank=2, ns_space="left")
    with pytest.raises(ValueError, match="ns_space='complement' takes the complement of U from the Householder QR"):
        COSMOS([w], rank=2, ns_space="complement", qr="cholesky_qr2")
    with pytest.raises(ConfigError, match="method.ns_space"):
        CosmosConfig(ns_space="left")
    with pytest.raises(ConfigError, match="method.ns_space=complement .* set method.qr=householder"):
        CosmosConfig(ns_space="complement", qr="cholesky_qr2")
    assert CosmosConfig(ns_space="complement", rank=2).build_optimizer(torch.nn.Linear(8, 8)).defaults["ns_space"] == "complement"


# ---- 6. constant gradient: fixed point -------------------------------------------------------
@pytest.mark.parametrize("ns_space", SPACES)
def test_constant_gradient_fixed_point(ns_space):
    G = _low_rank_grad(seed=3)
    w = torch.nn.Parameter(_g(48, 32))
    beta2 = 0.9
    opt = _cosmos(w, rank=4, betas=(0.9, beta2), ns_space=ns_space)
    deltas = [_step(opt, w, G) for _ in range(60)]
    st, t = opt.state[w], 60
    U = st["basis"]
    top = torch.linalg.svd(G).Vh[:4].T
    assert (top @ top.T - U @ U.T).norm() <= 1e-4  # span(U) = top-r right singular subspace
    GU = G @ U
    assert (st["gram"] / (1 - beta2**t) - GU.T @ GU).abs().max() <= 1e-4 * (GU.T @ GU).abs().max()
    assert (st["exp_avg_sq"] / (1 - beta2**t) - GU**2).abs().max() <= 1e-4 * (GU**2).max()
    direction = [d / d.norm() for d in deltas]
    assert (direction[-1] - direction[-2]).norm() <= 1e-4


# ---- 7. sign invariance ----------------------------------------------------------------------
@pytest.mark.parametrize("ns_space", SPACES)
def test_update_invariant_to_basis_column_signs(ns_space):
    w = torch.nn.Parameter(_g(48, 32))
    opt = _cosmos(w, rank=5, ns_space=ns_space)
    for s in range(3):
        _step(opt, w, _g(48, 32, seed=s))
    twin = torch.nn.Parameter(w.detach().clone())
    opt2 = _cosmos(twin, rank=5, ns_space=ns_space)
    state = copy.deepcopy(opt.state[w])
    flip = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0])
    state["basis"] *= flip
    state["gram"] *= flip[:, None] * flip[None, :]
    opt2.state[twin] = state
    G = _g(48, 32, seed=9)
    d1, d2 = _step(opt, w, G), _step(opt2, twin, G)
    assert (d1 - d2).norm() <= 1e-5 * d1.norm()


# ---- the QR of the power iteration: Householder (default) or CholeskyQR2 -----------------------
def test_cholesky_qr2_steps_like_householder_and_falls_back_where_it_cannot_serve(monkeypatch):
    """Same updates as Householder (the basis's column signs aside, which the update ignores), also
    for a matrix whose gradients have rank 2 < r (Z numerically rank-deficient: either basis spans
    the gradients' row space plus rounding-chosen directions that the update does not see; whether
    CholeskyQR2 declines there is up to rounding). A matrix with zero gradients has Z = 0:
    CholeskyQR2 declines and Householder's basis is used (counted), with no NaN."""
    householder_calls = []
    qr = torch.linalg.qr
    monkeypatch.setattr(torch.linalg, "qr", lambda *a, **k: householder_calls.append(1) or qr(*a, **k))
    a, b = _g(40, 2, seed=7).double(), _g(2, 24, seed=8).double()
    shapes = ((48, 32), (40, 24), (36, 20))  # distinct shapes: three batches, each its own QR call
    ws = {name: [torch.nn.Parameter(_g(*shape).double()) for shape in shapes]
          for name in ("householder", "cholesky_qr2")}
    opts = {name: COSMOS(ws[name], rank=4, lr=1e-2, qr=name) for name in ws}
    for t in range(8):
        for name in ws:
            ws[name][0].grad = _low_rank_grad(seed=t).double()
            ws[name][1].grad = a @ b * (1 + t)  # rank 2
            ws[name][2].grad = torch.zeros(36, 20, dtype=torch.float64)
            before = len(householder_calls)
            opts[name].step()
            if name == "cholesky_qr2" and t > 0:
                assert len(householder_calls) >= before + 1  # the zero-gradient matrix's fallback at least
    # rank 2: the rounding-chosen directions reach the update through V's eps regime, at ~1e-8
    for h, c, tol in zip(ws["householder"], ws["cholesky_qr2"], (1e-10, 1e-6, 0.0)):
        assert torch.isfinite(c).all() and (h - c).abs().max() <= tol


def test_qr_option_is_validated():
    from methods.cosmos.config import CosmosConfig
    from reprolab.checks import ConfigError

    with pytest.raises(ValueError, match=r"qr='lq' is not one of \('auto', 'householder', 'cholesky_qr2'\)"):
        COSMOS([torch.nn.Parameter(_g(8, 8))], rank=2, qr="lq")
    with pytest.raises(ConfigError, match="method.qr"):
        CosmosConfig(qr="lq")


# ---- 8. gamma = 0 ----------------------------------------------------------------------------
def test_gamma_zero_is_rank_r_adaptive_step():
    w = torch.nn.Parameter(_g(48, 32))
    opt = _cosmos(w, rank=4, gamma=0.0, lr=1e-2, lr_ratio=0.5)
    for s in range(3):
        d = _step(opt, w, _g(48, 32, seed=s))
    assert torch.linalg.matrix_rank(d, rtol=1e-4) <= 4
    assert d.norm().item() == pytest.approx(1e-2 * 0.5 * math.sqrt(48 * 32), rel=1e-5)
    U = opt.state[w]["basis"]
    assert (d - d @ U @ U.T).norm() <= 1e-5 * d.norm()  # A = D U^T lives in the row space of U^T


# ---- 9. AdamW branch -------------------------------------------------------------------------
def _aux_run(make, grads, p0):
    p = torch.nn.Parameter(p0.clone())
    opt = make([p])
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach()


@pytest.mark.parametrize("shape", [(7,), (10001, 3)])
@pytest.mark.parametrize("parity", [False, True])
def test_adamw_branch_equals_torch_adamw_at_beta1_0_9(shape, parity):
    p0 = _g(*shape)
    grads = [_g(*shape, seed=s) for s in range(5)]
    hp = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    ours = _aux_run(lambda ps: COSMOS(ps, rank=2, parity=parity, **hp), grads, p0)
    ref = _aux_run(lambda ps: torch.optim.AdamW(ps, **hp), grads, p0)
    assert ((ours - ref).abs() <= 1e-7 * ref.abs().clamp(min=1) + 1.2e-7).all()  # 1e-7, up to an fp32 ulp


def test_adamw_branch_at_beta1_0_95():
    """parity=True: the official 0.1-momentum rule (not torch AdamW); parity=False: torch AdamW."""
    p0, grads = _g(7), [_g(7, seed=s) for s in range(6)]
    hp = dict(lr=1e-2, betas=(0.95, 0.95), eps=1e-8, weight_decay=0.0)
    torch_adamw = _aux_run(lambda ps: torch.optim.AdamW(ps, **hp), grads, p0)
    assert (_aux_run(lambda ps: COSMOS(ps, **hp), grads, p0) - torch_adamw).abs().max() <= 1e-7
    official = _aux_run(lambda ps: COSMOS(ps, parity=True, **hp), grads, p0)
    p, m, v = p0.clone(), torch.zeros(7), torch.zeros(7)
    for t, g in enumerate(grads, 1):
        m = 0.95 * m + 0.1 * g
        v = 0.95 * v + 0.05 * g * g
        p = p - 1e-2 / (1 - 0.9**t) * m / (v.sqrt() / math.sqrt(1 - 0.95**t) + 1e-8)
    assert (official - p).abs().max() <= 1e-6
    assert (official - torch_adamw).abs().max() > 1e-3


# ---- 10. routing -----------------------------------------------------------------------------
def test_shape_routing_and_override():
    big, edge, vec, mat = (torch.nn.Parameter(torch.zeros(*s)) for s in [(10001, 8), (10000, 8), (8,), (16, 8)])
    opt = COSMOS([big, edge, vec], rank=4)
    routes = {id(p): g["use_cosmos"] for g in opt.param_groups for p in g["params"]}
    assert routes == {id(big): False, id(edge): True, id(vec): False}
    opt = COSMOS([{"params": [big], "use_cosmos": True}, {"params": [mat], "use_cosmos": False}], rank=4)
    assert [g["use_cosmos"] for g in opt.param_groups] == [True, False]
    mat.grad = torch.ones(16, 8)
    opt.step()
    assert set(opt.state[mat]) == {"step", "exp_avg", "exp_avg_sq"} and opt.state[mat]["exp_avg_sq"].shape == (16, 8)


def test_plugin_routes_embeddings_and_head_to_adamw_by_name(compose):
    from reprolab.config import typed

    cfg, _ = compose(["method=cosmos", "method.rank=16"])
    model = typed(cfg.model).build(256)
    opt = typed(cfg.method).build_optimizer(model)
    route = {id(p): g["use_cosmos"] for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        expect = p.dim() == 2 and "embed" not in name and "lm_head" not in name
        assert route[id(p)] is expect, name


# ---- 11. Nesterov weights sum to one ---------------------------------------------------------
def test_nesterov_mix_of_constant_gradient_is_the_gradient(monkeypatch):
    projections = []
    real = cosmos_module.project_moments

    def spy(G, M, U, V, **kw):
        out = real(G, M, U, V, **kw)
        projections.append((G @ U, out[1]))
        return out

    monkeypatch.setattr(cosmos_module, "project_moments", spy)
    G = _g(48, 32, seed=4)
    w = torch.nn.Parameter(_g(48, 32))
    opt = _cosmos(w, betas=(0.95, 0.95))
    for _ in range(8):
        _step(opt, w, G)
    for GU, P_hat in projections:  # Ghat U = G U, i.e. Ghat = G on the subspace, at every t
        assert (P_hat - GU).abs().max() <= 1e-5 * GU.abs().max()


# ---- 12. vanishing residual (rank = min(m, n)) -----------------------------------------------
@pytest.mark.parametrize("ns_space", SPACES)
@pytest.mark.parametrize("shape, rank, grad_rank", [((24, 8), 8, 8), ((24, 12), 4, 4)])
def test_vanishing_residual_is_dropped(ns_space, shape, rank, grad_rank):
    """The residual is roundoff where the basis holds the gradients' whole row space (rank = n, or
    gradients of rank r = 4 in a fixed row space): parity=False drops it, so gamma does not inject
    noise (the complement path's residual is empty for rank = n, roundoff for the other). Not for
    gradients of rank < r: the basis's extra directions are rounding-chosen and D there is
    noise / (sqrt(noise^2) + eps), so any two evaluation orders differ at O(1) (as in the QR test)."""
    m, n = shape
    row_space = _g(grad_rank, n, seed=11)
    deltas = {}
    for gamma in (0.0, 0.2):
        w = torch.nn.Parameter(_g(m, n))
        opt = _cosmos(w, rank=rank, gamma=gamma, ns_space=ns_space)
        deltas[gamma] = [_step(opt, w, _g(m, grad_rank, seed=s) @ row_space) for s in range(3)]
    for a, b in zip(deltas[0.0], deltas[0.2]):  # gamma = 0 takes the full path: rounding apart
        assert (a - b).norm() <= 1e-4 * a.norm()


# ---- 13. state memory -------------------------------------------------------------------------
def test_state_numel_matches_formula():
    m, n, r = 40, 24, 6
    w, b = torch.nn.Parameter(_g(m, n)), torch.nn.Parameter(_g(m))
    opt = COSMOS([w, b], rank=r, ns_dtype="float32")
    w.grad, b.grad = _g(m, n), _g(m)
    opt.step()
    numel = lambda s: sum(v.numel() for v in s.values() if isinstance(v, torch.Tensor))  # noqa: E731
    assert numel(opt.state[w]) == m * n + (m + n) * r + r * r
    assert numel(opt.state[b]) == 2 * m


# ---- 14. Newton-Schulz -----------------------------------------------------------------------
def test_ns5_gaussian_spectrum():
    out = newton_schulz5(_g(96, 64, seed=5), association="cosmos", dtype=torch.bfloat16)
    sv = torch.linalg.svdvals(out.float())
    assert out.dtype == torch.bfloat16 and 0.6 <= sv.min() and sv.max() <= 1.2


def test_ns5_on_orthonormal_input_follows_the_scalar_map():
    Q, _ = torch.linalg.qr(_g(96, 64, seed=6))
    a, b, c = NS5_COEFFS
    x = 1 / math.sqrt(64)  # Frobenius normalisation of k = 64 unit singular values
    for _ in range(5):
        x = a * x + b * x**3 + c * x**5
    out = newton_schulz5(Q, association="cosmos", dtype=torch.bfloat16).float()
    U, sv, Vh = torch.linalg.svd(out, full_matrices=False)
    assert (sv - x).abs().max() <= 3e-2
    assert (out - x * Q).abs().max() <= 3e-2 * x  # same singular vectors: out = f^5(x) Q
