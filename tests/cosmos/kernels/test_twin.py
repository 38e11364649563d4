"""The PyTorch twins against plain formulas, every path of `gemm_epilogue` (no Triton needed)."""
import pytest
import torch

from reprolab.kernels.cosmos import gemm_epilogue, project_moments


def _rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _expect(a, b, alpha, c, beta, d, delta):
    out = alpha * (a.double() @ b.double())
    if c is not None:
        out = out + float(beta) * c.double()
    if d is not None:
        out = out + delta * d.double()
    return out


@pytest.mark.parametrize("with_c, with_d, beta", [
    (False, False, 1.0), (True, False, 1.0), (True, False, 0.0), (True, True, -0.7), (True, True, 0.0),
    (False, True, 1.0), (True, True, "tensor"),
])
@pytest.mark.parametrize("into_c", [False, True])
def test_gemm_epilogue_matches_the_formula(with_c, with_d, beta, into_c):
    a, b = _rand(30, 20, seed=1), _rand(20, 25, seed=2)
    c = _rand(30, 25, seed=3) if with_c else None
    d = _rand(30, 25, seed=4) if with_d else None
    beta = torch.tensor(0.3) if beta == "tensor" else beta
    expect = _expect(a, b, -1.5, c, beta, d, 0.4)
    out = c if into_c and c is not None else None
    got = gemm_epilogue(a, b, alpha=-1.5, c=c, beta=beta, d=d, delta=0.4, out=out)
    assert (got.double() - expect).abs().max() <= 1e-5 * expect.abs().max()
    if out is not None:
        assert got is c  # accumulated in place


def test_gemm_epilogue_transposed_operands_give_row_major_results():
    """Z^T from transposed views is row-major, so Z = (Z^T)^T reaches LAPACK's QR column-major."""
    a, b, c = _rand(20, 8, seed=1).T, _rand(20, 30, seed=2), _rand(30, 8, seed=3).T
    got = gemm_epilogue(a, b, alpha=0.05, c=c, beta=0.95)
    assert got.is_contiguous()
    assert torch.allclose(got.double(), _expect(a, b, 0.05, c, 0.95, None, 0.0), atol=1e-5)


def test_gemm_epilogue_bf16_operands_keep_an_fp32_epilogue():
    """bf16 product (rounded once to bf16), fp32 axpy: the c term keeps full fp32 precision."""
    a, b, c = _rand(16, 32, seed=1, dtype=torch.bfloat16), _rand(32, 16, seed=2, dtype=torch.bfloat16), _rand(16, 16)
    got = gemm_epilogue(a, b, c=c, beta=2.0, out_dtype=torch.float32)
    assert got.dtype == torch.float32
    assert torch.equal(got, (a @ b).float() + 2.0 * c)


def test_project_moments_matches_the_formula():
    m, n, r = 24, 18, 5
    G, M, V = _rand(m, n, seed=1), _rand(m, n, seed=2), _rand(m, r, seed=3).abs()
    U = torch.linalg.qr(_rand(n, r, seed=4)).Q
    kw = dict(beta1=0.9, beta2=0.95, g_coef=1.0, m_coef=0.9, mix_scale=0.4, bias2=0.0975, eps=1e-8)
    M_new = 0.9 * M.double() + G.double()
    ghat = 0.4 * (G.double() + 0.9 * M_new)
    V_new = 0.95 * V.double() + 0.05 * (G.double() @ U.double()) ** 2
    P_G, P_hat, D = project_moments(G, M, U, V, **kw)
    for got, want in ((M, M_new), (V, V_new), (P_G, G.double() @ U.double()), (P_hat, ghat @ U.double()),
                      (D, (ghat @ U.double()) / (V_new.sqrt() / 0.0975**0.5 + 1e-8))):
        assert (got.double() - want).abs().max() <= 1e-5 * want.abs().max()
