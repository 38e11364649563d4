"""The baselines against their definitions (cosmos.md §3 and §6, properties 13 and 15-18)."""
import math

import pytest
import torch

import methods.soap.optimizer as soap_module
from reprolab.kernels.cosmos.reference import newton_schulz5
from methods.adam_mini import AdamMini
from methods.galore import GaLoreAdamW
from methods.galore.optimizer import project, project_back, svd_projector
from methods.muon import Muon
from methods.soap import SOAP


def _g(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _numel(state):
    return sum(v.numel() for v in state.values() if isinstance(v, torch.Tensor))


def _run(opt, p, grads):
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach()


# ---- 13. state memory (cosmos.md §2.8) --------------------------------------------------------
@pytest.mark.parametrize("m, n", [(40, 24), (24, 40)])
def test_state_numel_formulas(m, n):
    r = 6
    counts = {}
    for name, make in {
        "soap": lambda ps: SOAP(ps),
        "muon": lambda ps: Muon(ps),
        "galore": lambda ps: GaLoreAdamW([{"params": ps, "rank": r}]),
        "adam_mini": lambda ps: AdamMini([("mlp.weight", ps[0])]),
    }.items():
        w = torch.nn.Parameter(_g(m, n))
        opt = make([w])
        _run(opt, w, [_g(m, n, seed=s) for s in range(2)])
        counts[name] = _numel(opt.state[w])
    assert counts["soap"] == 2 * m * n + 2 * m * m + 2 * n * n
    assert counts["muon"] == m * n
    assert counts["galore"] == (2 * m * r + n * r if m >= n else 2 * n * r + m * r)
    assert counts["adam_mini"] == m * n + m


def test_soap_skips_preconditioning_beyond_max_dim():
    w = torch.nn.Parameter(_g(30, 8))
    opt = SOAP([w], max_precond_dim=20)
    _run(opt, w, [_g(30, 8, seed=s) for s in range(2)])
    assert "precond_left" not in opt.state[w] and opt.state[w]["precond_right"].shape == (8, 8)
    assert _numel(opt.state[w]) == 2 * 30 * 8 + 2 * 8 * 8


# ---- 15. SOAP -------------------------------------------------------------------------------
def test_soap_first_step_only_builds_the_preconditioner():
    w = torch.nn.Parameter(_g(12, 9))
    before = w.detach().clone()
    opt = SOAP([w])
    _run(opt, w, [_g(12, 9, seed=1)])
    assert torch.equal(w, before) and opt.state[w]["step"] == 0
    Q = opt.state[w]["basis_left"]
    assert (Q.T @ Q - torch.eye(12)).abs().max() < 1e-5


def test_soap_with_identity_basis_is_adam(monkeypatch):
    """Q = I: SOAP is Adam with step lr sqrt(1 - beta2^t) / (1 - beta1^t) and wd after the update."""
    monkeypatch.setattr(soap_module, "eigenbasis", lambda mat: torch.eye(mat.shape[-1]).expand_as(mat))
    lr, (b1, b2), eps, wd = 3e-3, (0.9, 0.99), 1e-8, 0.01
    p0, grads = _g(10, 6), [_g(10, 6, seed=s) for s in range(7)]
    w = torch.nn.Parameter(p0.clone())
    ours = _run(SOAP([w], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, precondition_frequency=1000), w, grads)
    p, m, v = p0.clone(), torch.zeros(10, 6), torch.zeros(10, 6)
    for t, g in enumerate(grads[1:], 1):  # the first gradient only initialises L and R
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (v.sqrt() + eps)
        p = p - lr * wd * p
    assert (ours - p).abs().max() <= 1e-6


def test_soap_refresh_sorts_basis_and_permutes_v():
    """The refresh sorts Q's columns by diag(Q^T R Q), descending, and permutes v's axis the same way
    (forgetting the permutation is the classic SOAP re-implementation bug, cosmos.md §7)."""
    v = _g(2, 3).abs()
    P = torch.diag(torch.tensor([1.0, 3.0, 2.0]))
    state = {"precond_right": torch.stack([P, P.flip(0, 1)]), "basis_right": torch.eye(3).repeat(2, 1, 1),
             "exp_avg_sq": torch.stack([v, v])}  # a batch of two: each matrix sorted by its own order
    SOAP._refresh(state)
    for i, order in enumerate([[1, 2, 0], [1, 0, 2]]):
        assert torch.equal(state["exp_avg_sq"][i], v[:, order])
        assert torch.equal(state["basis_right"][i].abs(), torch.eye(3)[:, order])


# ---- 16. Muon -------------------------------------------------------------------------------
@pytest.mark.parametrize("m, n", [(48, 32), (32, 48)])
def test_muon_update_spectrum(m, n):
    lr = 0.02
    w = torch.nn.Parameter(_g(m, n))
    opt = Muon([w], lr=lr, ns_dtype="bfloat16")
    before = w.detach().clone()
    _run(opt, w, [_g(m, n, seed=1)])
    sv = torch.linalg.svdvals(before - w.detach()) / (lr * max(1, m / n) ** 0.5)
    assert 0.6 <= sv.min() and sv.max() <= 1.2


def test_muon_without_nesterov_steps_along_ns5_of_the_buffer():
    beta, lr = 0.9, 0.05
    w = torch.nn.Parameter(_g(20, 12))
    opt = Muon([w], lr=lr, momentum=beta, nesterov=False, ns_dtype="float32")
    grads = [_g(20, 12, seed=s) for s in range(4)]
    buf = torch.zeros(20, 12)
    for g in grads:
        before = w.detach().clone()
        _run(opt, w, [g])
        buf = beta * buf + (1 - beta) * g
        expected = newton_schulz5(buf, association="muon", dtype=torch.float32) * lr * max(1, 20 / 12) ** 0.5
        assert (before - w.detach() - expected).abs().max() <= 1e-5


def test_muon_routes_vectors_to_adamw():
    w, b = torch.nn.Parameter(_g(8, 4)), torch.nn.Parameter(_g(8))
    opt = Muon([w, b], adam_lr=1e-2, adam_betas=(0.9, 0.95), adam_eps=1e-8)
    assert [(g["use_muon"], g["lr"]) for g in opt.param_groups] == [(True, 0.02), (False, 1e-2)]
    ref = torch.nn.Parameter(b.detach().clone())
    grads = [_g(8, seed=s) for s in range(3)]
    for g in grads:
        w.grad = torch.zeros(8, 4)
        b.grad = g.clone()
        opt.step()
    expected = _run(torch.optim.AdamW([ref], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0), ref, grads)
    assert (b.detach() - expected).abs().max() <= 1e-6


# ---- 17. GaLore -----------------------------------------------------------------------------
@pytest.mark.parametrize("m, n", [(20, 12), (12, 20)])
def test_galore_full_rank_projection_is_identity(m, n):
    G = _g(m, n)
    P = svd_projector(G, min(m, n))
    assert (project_back(project(G, P), P, G.shape) - G).abs().max() <= 1e-5
    gram = P @ P.T if m >= n else P.T @ P
    assert (gram - torch.eye(min(m, n))).abs().max() <= 1e-5


def test_galore_full_rank_unit_scale_is_hf_adamw_in_the_rotated_basis():
    """With rank = n, scale 1 and one projector (gap > steps), GaLore is Adam on G P^T mapped back."""
    m, n = 16, 6
    p0, grads = _g(m, n), [_g(m, n, seed=s) for s in range(5)]
    w = torch.nn.Parameter(p0.clone())
    ours = _run(GaLoreAdamW([{"params": [w], "rank": n, "scale": 1.0, "update_proj_gap": 100}], lr=1e-2), w, grads)
    P = svd_projector(grads[0], n)
    p, mom, v = p0.clone(), torch.zeros(m, n), torch.zeros(m, n)
    for t, g in enumerate(grads, 1):
        gl = g @ P.T
        mom = 0.9 * mom + 0.1 * gl
        v = 0.999 * v + 0.001 * gl * gl
        p = p - 1e-2 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t) * (mom / (v.sqrt() + 1e-6)) @ P
    assert (ours - p).abs().max() <= 1e-6


def test_galore_refreshes_projector_every_gap():
    w = torch.nn.Parameter(_g(16, 8))
    opt = GaLoreAdamW([{"params": [w], "rank": 3, "update_proj_gap": 2}])
    seen = []
    for s in range(5):
        _run(opt, w, [_g(16, 8, seed=s)])
        seen.append(opt.state[w]["projector"].clone())
    assert torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2]) and torch.equal(seen[2], seen[3])


# ---- 18. Adam-mini --------------------------------------------------------------------------
def test_adam_mini_with_single_element_blocks_is_adam():
    """A bias is partitioned into single-element blocks: Adam-mini is then torch AdamW (wd 0 for biases)."""
    p0, grads = _g(9), [_g(9, seed=s) for s in range(5)]
    b = torch.nn.Parameter(p0.clone())
    ours = _run(AdamMini([("layer.bias", b)], lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1), b, grads)
    ref = torch.nn.Parameter(p0.clone())
    expected = _run(torch.optim.AdamW([ref], lr=1e-2, betas=(0.9, 0.95), weight_decay=0.0), ref, grads)
    assert (ours - expected).abs().max() <= 1e-6


def test_adam_mini_partition_and_row_second_moment():
    dim, heads = 8, 2
    named = [(n, torch.nn.Parameter(_g(*s, seed=i))) for i, (n, s) in enumerate([
        ("model.embed_tokens.weight", (30, dim)), ("model.layers.0.self_attn.q_proj.weight", (dim, dim)),
        ("model.layers.0.self_attn.k_proj.weight", (dim // 2, dim)),  # GQA: one kv head
        ("model.layers.0.mlp.down_proj.weight", (dim, 12)), ("model.norm.weight", (dim,)), ("lm_head.weight", (30, dim)),
    ])]
    opt = AdamMini(named, dim=dim, n_heads=heads, weight_decay=0.1)
    grads = {n: _g(*p.shape, seed=10 + i) for i, (n, p) in enumerate(named)}
    for n, p in named:
        p.grad = grads[n].clone()
    opt.step()
    blocks = {g["name"]: (g["blocks"], g["weight_decay"]) for g in opt.param_groups}
    assert blocks == {"model.embed_tokens.weight": (30, 0.1), "model.layers.0.self_attn.q_proj.weight": (2, 0.1),
                      "model.layers.0.self_attn.k_proj.weight": (1, 0.1),
                      "model.layers.0.mlp.down_proj.weight": (8, 0.1), "model.norm.weight": (1, 0.0),
                      "lm_head.weight": (30, 0.1)}
    down = dict(named)["model.layers.0.mlp.down_proj.weight"]
    v = opt.state[down]["exp_avg_sq"]  # after one step: (1 - beta2) * mean over the row of g^2
    expected = (1 - 0.999) * grads["model.layers.0.mlp.down_proj.weight"].square().mean(dim=1, keepdim=True)
    assert v.shape == (8, 1) and (v - expected).abs().max() <= 1e-9
