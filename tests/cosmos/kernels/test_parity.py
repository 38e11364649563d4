"""Triton kernels vs their PyTorch twins (cosmos.md §6.19): fp32 parts rtol 1e-4, NS5 (bf16)
within 2e-2 entrywise and 1e-2 in singular values. On CPU this runs Triton's interpreter."""
import math

import pytest
import torch

from reprolab.kernels.cosmos import backend_for, gemm_epilogue, newton_schulz5, project_moments
from tests.cosmos.kernels.conftest import DEVICE

pytest.importorskip("triton")


def _close(a, b, rtol=1e-4):
    a, b = a.float(), b.float()
    assert (a - b).abs().max() <= rtol * b.abs().max() + 1e-6, (a - b).abs().max()


def _rand(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(device=DEVICE, dtype=dtype)


def test_auto_backend_is_the_twin_on_cpu():
    assert backend_for(torch.zeros(2)) == "torch"
    assert backend_for(torch.zeros(2), "triton") == "triton"
    with pytest.raises(ValueError, match="backend='cuda' is not one of"):
        backend_for(torch.zeros(2), "cuda")


def test_auto_backend_on_cuda_is_triton_only_where_it_measured_faster(monkeypatch):
    """On a GPU auto runs Newton-Schulz on Triton and the rank-r GEMMs and projection on cuBLAS."""
    from types import SimpleNamespace

    cuda_bf16 = SimpleNamespace(is_cuda=True, dtype=torch.bfloat16)
    assert backend_for(cuda_bf16, None, "newton_schulz5") == "triton"
    assert backend_for(cuda_bf16, None, "gemm_epilogue") == "torch"
    assert backend_for(cuda_bf16, None, "project_moments") == "torch"
    assert backend_for(cuda_bf16, "triton", "project_moments") == "triton"  # asked for: every kernel on Triton
    assert backend_for(SimpleNamespace(is_cuda=True, dtype=torch.float64), None, "newton_schulz5") == "torch"
    monkeypatch.setenv("REPROLAB_TRITON", "0")
    assert backend_for(cuda_bf16, None, "newton_schulz5") == "torch"


@pytest.mark.parametrize("M, K, N", [(70, 50, 40), (16, 96, 33)])
def test_gemm_epilogue_fp32(M, K, N):
    a, b, c, d = _rand(M, K, seed=1), _rand(K, N, seed=2), _rand(M, N, seed=3), _rand(M, N, seed=4)
    kw = dict(alpha=-0.5, c=c, beta=2.0, d=d, delta=0.3)
    _close(gemm_epilogue(a, b, backend="triton", **kw), gemm_epilogue(a, b, backend="torch", **kw))
    # transposed operands are strided views, not copies
    _close(gemm_epilogue(b.T, a.T, backend="triton"), gemm_epilogue(b.T, a.T, backend="torch"))


def test_gemm_epilogue_device_scalar_beta():
    """The COSMOS mix coefficient is a device tensor (no host sync); the kernel reads it from memory."""
    a, b, c = _rand(40, 24, seed=1), _rand(24, 36, seed=2), _rand(40, 36, seed=3)
    beta = torch.tensor(0.7, device=DEVICE)
    _close(gemm_epilogue(a, b, c=c, beta=beta, backend="triton"), gemm_epilogue(a, b, c=c, beta=0.7, backend="torch"))


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-4), (torch.bfloat16, 1e-2)])
def test_symmetric_gram(dtype, rtol):
    """X X^T from the upper block triangle + mirrored tiles equals the full product."""
    from reprolab.kernels.cosmos.triton_kernels import gemm_epilogue as triton_gemm

    x = _rand(150, 70, seed=5, dtype=dtype)  # 150 rows: three 64-blocks, the last one ragged
    out = triton_gemm(x, x.T, symmetric=True)
    assert torch.equal(out[64:128, :64], out[:64, 64:128].T)  # a mirrored tile is an exact copy
    assert torch.equal(out[128:, 64:128], out[64:128, 128:].T)
    _close(out, (x.float() @ x.float().T), rtol)


def test_project_moments_matches_twin():
    m, n, r = 75, 40, 12  # r not a power of two, m not a multiple of the row block
    G, M, V = _rand(m, n, seed=1), _rand(m, n, seed=2), _rand(m, r, seed=3).abs()
    U = torch.linalg.qr(_rand(n, r, seed=4)).Q
    kw = dict(beta1=0.95, beta2=0.95, g_coef=1.0, m_coef=0.95, mix_scale=0.4, bias2=0.0975, eps=1e-8)
    M1, V1, M2, V2 = M.clone(), V.clone(), M.clone(), V.clone()
    out1 = project_moments(G, M1, U, V1, backend="triton", **kw)
    out2 = project_moments(G, M2, U, V2, backend="torch", **kw)
    for a, b in zip((*out1, M1, V1), (*out2, M2, V2)):
        _close(a, b)


@pytest.mark.parametrize("association", ["cosmos", "muon"])
@pytest.mark.parametrize("shape", [(96, 64), (40, 100)])
def test_newton_schulz_bf16(association, shape):
    """bf16 NS5 drifts from the exact (fp32) iteration by ~2e-2 whatever the rounding order; the
    kernel (one fp32 epilogue rounding per step) must be as close to it as the twin (torch, which
    rounds every op), and within 4e-2 of the twin in entries and singular values."""
    x = _rand(*shape, seed=7)
    out = newton_schulz5(x, association=association, dtype=torch.bfloat16, backend="triton").float()
    twin = newton_schulz5(x, association=association, dtype=torch.bfloat16, backend="torch").float()
    exact = newton_schulz5(x, association=association, dtype=torch.float32, backend="torch")
    assert out.shape == x.shape
    sv, sv_twin, sv_exact = (torch.linalg.svdvals(t) for t in (out, twin, exact))
    assert (out - exact).abs().max() <= 2 * (twin - exact).abs().max()
    assert (sv - sv_exact).abs().max() <= 2 * (sv_twin - sv_exact).abs().max()
    assert (out - twin).abs().max() <= 4e-2 and (sv - sv_twin).abs().max() <= 4e-2
    assert 0.6 <= sv.min() and sv.max() <= 1.2


def test_newton_schulz_fp32_is_tight():
    x = _rand(50, 30, seed=8)
    out = newton_schulz5(x, dtype=torch.float32, backend="triton")
    _close(out, newton_schulz5(x, dtype=torch.float32, backend="torch"), 1e-4)


@pytest.mark.parametrize("name", ["cosmos", "muon"])
def test_optimizer_step_triton_equals_twin(name):
    """Three full steps (fp32 Newton-Schulz) with every kernel on Triton vs every twin."""
    from methods.cosmos import COSMOS
    from methods.muon import Muon

    make = {"cosmos": lambda ps, be: COSMOS(ps, rank=6, ns_dtype="float32", backend=be, lr=0.01),
            "muon": lambda ps, be: Muon(ps, ns_dtype="float32", backend=be)}[name]
    weights = []
    for backend in ("triton", "torch"):
        w = torch.nn.Parameter(_rand(40, 24, seed=9))
        opt = make([w], backend)
        for step in range(3):
            w.grad = _rand(40, 24, seed=10 + step)
            opt.step()
        weights.append(w.detach())
    delta = weights[1] - _rand(40, 24, seed=9)
    assert (weights[0] - weights[1]).abs().max() <= 1e-4 * delta.abs().max()
    assert math.isfinite(weights[0].sum().item())


def test_gemm_epilogue_accumulates_into_c():
    """out=c: the COSMOS mix H = D U^T + coef O is written into O itself (each tile reads c first)."""
    a, b, c = _rand(70, 24, seed=1), _rand(24, 90, seed=2), _rand(70, 90, seed=3)
    expect = gemm_epilogue(a, b, c=c, beta=0.7, backend="torch")
    got = gemm_epilogue(a, b, c=c, beta=torch.tensor(0.7, device=DEVICE), out=c, backend="triton")
    assert got is c
    _close(got, expect)
    from reprolab.kernels.cosmos.triton_kernels import gemm_epilogue as triton_gemm

    x = _rand(64, 64, seed=4)
    with pytest.raises(ValueError, match="must not be c or d"):
        triton_gemm(x, x.T, c=x, out=x, symmetric=True)


def test_batched_gemm_epilogue_is_one_product_per_matrix():
    """A batch (k, M, K) x (k, K, N) in one launch: each slice equals its own product, including the
    symmetric mode (mirrored tiles stay inside their own matrix) and strided (transposed) operands."""
    from reprolab.kernels.cosmos.triton_kernels import gemm_epilogue as triton_gemm

    a, b, c, d = _rand(3, 70, 24, seed=1), _rand(3, 24, 40, seed=2), _rand(3, 70, 40, seed=3), _rand(3, 70, 40, seed=4)
    got = triton_gemm(a, b, alpha=-0.5, c=c, beta=2.0, d=d, delta=0.3)
    for i in range(3):
        _close(got[i], gemm_epilogue(a[i], b[i], alpha=-0.5, c=c[i], beta=2.0, d=d[i], delta=0.3, backend="torch"))
    x = _rand(3, 150, 70, seed=5)
    gram = triton_gemm(x, x.mT, symmetric=True)
    for i in range(3):
        _close(gram[i], x[i] @ x[i].T)
    with pytest.raises(ValueError, match="same number of matrices"):
        triton_gemm(a, b[:2])


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("shape", [(4, 40, 100), (3, 96, 64)])  # wide and tall batches
def test_batched_newton_schulz_orthogonalises_each_matrix(backend, shape):
    """NS5 of a batch equals NS5 of each matrix on its own (each normalised by its own norm)."""
    x = _rand(*shape, seed=11) * torch.arange(1, shape[0] + 1, device=DEVICE).view(-1, 1, 1)  # different norms
    out = newton_schulz5(x, association="muon", dtype=torch.float32, backend=backend)
    assert out.shape == x.shape
    for i in range(shape[0]):
        _close(out[i], newton_schulz5(x[i], association="muon", dtype=torch.float32, backend="torch"), 1e-4)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_batched_projection_and_per_matrix_beta(backend):
    """The batched COSMOS step's kernels: project_moments on (k, ...) batches, and the mix
    H = D U^T + beta_i O_i with one device coefficient per matrix, each slice as if alone."""
    k, m, n, r = 3, 37, 24, 8
    G, M, V = _rand(k, m, n, seed=1), _rand(k, m, n, seed=2), _rand(k, m, r, seed=3).abs()
    U = torch.linalg.qr(_rand(k, n, r, seed=4)).Q
    kw = dict(beta1=0.95, beta2=0.95, g_coef=1.0, m_coef=0.95, mix_scale=0.4, bias2=0.0975, eps=1e-8)
    M1, V1 = M.clone(), V.clone()
    outs = project_moments(G, M1, U, V1, backend=backend, **kw)
    for i in range(k):
        Mi, Vi = M[i].clone(), V[i].clone()
        for got, want in zip((*outs, M1, V1), (*project_moments(G[i], Mi, U[i], Vi, backend="torch", **kw), Mi, Vi)):
            _close(got[i], want)
    D, O = _rand(k, m, r, seed=5), _rand(k, m, n, seed=6)
    beta = torch.tensor([0.5, 0.0, -2.0], device=DEVICE)
    H = gemm_epilogue(D, U.mT, c=O.clone(), beta=beta, backend=backend)
    for i in range(k):
        _close(H[i], D[i] @ U[i].T + beta[i] * O[i])
