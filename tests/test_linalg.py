"""methods.linalg: CholeskyQR2 gives the QR factor (up to column signs) or declines; the methods'
power iterations do not depend on which orthonormalisation ran; the compact WY form of the
Householder QR is its orthogonal factor."""
import pytest
import torch

from methods.linalg import cholesky_qr2, householder_qr, orthonormal_basis


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])  # benchmarks/gpu.sh runs this file on a GPU


def _g(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _conditioned(k=3, n=40, r=6, cond=1e4):
    left, right = torch.linalg.qr(_g(k, n, r, seed=1)).Q, torch.linalg.qr(_g(k, r, r, seed=2)).Q
    return left * torch.logspace(0, -torch.log10(torch.tensor(cond)).item(), r) @ right


@pytest.mark.parametrize("device", DEVICES)
def test_cholesky_qr2_is_the_qr_factor_up_to_column_signs(device):
    Z = _conditioned().to(device)  # a batch of 3 with cond 1e4
    Q, house = cholesky_qr2(Z), torch.linalg.qr(Z).Q
    R = Q.mT @ Z  # upper triangular with a positive diagonal: Q is the QR factor, not just a basis
    assert torch.allclose(Q.mT @ Q, torch.eye(6, device=device).expand(3, 6, 6), atol=1e-6)
    assert R.tril(-1).abs().max() < 1e-6 * R.abs().max() and (R.diagonal(dim1=-2, dim2=-1) > 0).all()
    signs = torch.sign((Q * house).sum(-2, keepdim=True))
    assert (Q - house * signs).abs().max() < 1e-3  # fp32 Householder's own error at cond 1e4


@pytest.mark.parametrize("device", DEVICES)
def test_cholesky_qr2_declines_rank_deficient_input_and_householder_serves(device):
    Z = _conditioned().to(device)
    Z[1, :, 5] = Z[1, :, 4]  # one rank-deficient matrix in the batch
    assert cholesky_qr2(Z) is None and cholesky_qr2(torch.zeros(40, 6, device=device)) is None
    Q = orthonormal_basis(Z, "cholesky_qr2")
    assert torch.equal(Q, torch.linalg.qr(Z).Q)  # the fallback is Householder, for the whole batch
    assert torch.equal(orthonormal_basis(Z), Q)  # auto: CholeskyQR2 on CUDA, declined here; Householder on CPU
    with pytest.raises(ValueError, match=r"qr='gram_schmidt' is not one of \('auto', 'householder', 'cholesky_qr2'\)"):
        orthonormal_basis(Z, "gram_schmidt")


def test_gear_low_rank_fit_does_not_depend_on_the_orthonormalisation(monkeypatch):
    """GEAR's power iteration keeps Q Pᵀ = Q Qᵀ R: the span, not the basis, fixes it."""
    import methods.gear.compress as compress

    R, p0 = _g(2, 4, 64, 32), torch.rand(32, 3, generator=torch.Generator().manual_seed(5))
    products, calls = {}, []
    for method in ("householder", "cholesky_qr2"):
        monkeypatch.setattr(compress, "orthonormal_basis",
                            lambda Z, m=method: calls.append(m) or orthonormal_basis(Z, m))
        for every in (False, True):
            Q, P = compress.power_iteration(R, 3, 3, p0, orthogonalize_every=every)
            products[method, every] = Q @ P.mT
    assert calls.count("cholesky_qr2") == 2 + 6  # P and Q in the last round; every round with orthogonalize_every
    for every in (False, True):
        assert (products["householder", every] - products["cholesky_qr2", every]).abs().max() < 1e-4


def _orthogonal_factor(Z):
    """The n x n orthogonal factor of the Householder QR of Z, by LAPACK's own orgqr (reference)."""
    reflectors, tau = torch.geqrf(Z)
    n, r = Z.shape[-2:]
    padded = torch.cat([reflectors, torch.zeros(*Z.shape[:-1], n - r, dtype=Z.dtype, device=Z.device)], -1)
    return torch.linalg.householder_product(padded, tau)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
def test_householder_qr_compact_wy_is_the_orthogonal_factor(device, batch):
    n, r, m = 20, 6, 7
    Z = _g(*batch, n, r, seed=3).double().to(device)
    Q, wy = householder_qr(Z)
    full = _orthogonal_factor(Z)
    assert (Q - torch.linalg.qr(Z).Q).abs().max() < 1e-13  # the thin factor is linalg.qr's
    X = _g(*batch, m, n, seed=4).double().to(device)
    assert (wy.apply(X.clone()) - X @ full).abs().max() < 1e-13
    assert (wy.apply(X.clone(), transpose=True) - X @ full.mT).abs().max() < 1e-13
    assert (wy.apply(wy.apply(X.clone()), transpose=True) - X).abs().max() < 1e-13  # Q Q^T = I


def test_householder_qr_where_geqrf_leaves_reflectors_out():
    """tau = 0 (H_i = I) where a column is already zero below the diagonal: a zero matrix, and a
    matrix whose first column is (the later reflectors active)."""
    Z = _g(3, 10, 4, seed=5).double()
    Z[0] = 0
    Z[1, 1:, 0] = 0
    tau = torch.geqrf(Z)[1]
    assert (tau[0] == 0).all() and tau[1, 0] == 0 and (tau[1, 1:] != 0).all() and (tau[2] != 0).all()
    Q, wy = householder_qr(Z)
    full = _orthogonal_factor(Z)
    eye = torch.eye(10, dtype=Z.dtype).expand(3, 10, 10)
    assert torch.isfinite(Q).all() and (wy.apply(eye.clone()) - full).abs().max() < 1e-13
    assert (full.mT @ full - eye).abs().max() < 1e-13 and (Q - full[..., :4]).abs().max() < 1e-13
