"""The hot pieces of a COSMOS step, each with a Triton kernel and a PyTorch twin (cosmos.md §2.11).

    from reprolab.kernels.cosmos import gemm_epilogue, newton_schulz5, project_moments

Every function takes ``backend``: ``"triton"``, ``"torch"`` (the twin, reprolab/kernels/cosmos/reference.py)
or ``None`` (auto). Auto runs Triton where it measured faster than the twin on a GPU, for CUDA
tensors of fp32/bf16/fp16 when triton imports: Newton-Schulz (1.1-1.2x faster than cuBLAS on an
H200, bf16, 2048 x 5461: benchmarks/results/gpu_cosmos.md). The rank-r products and the fused
projection stay on cuBLAS through the twin there: on the same run the power-iteration product took
0.70x the twin's speed, the residual 1.0x, and the projection kernel (one program per 64 rows, so
32 programs for 2048 rows, fp32 dot products) 76x longer. Everything else, and any tensor on the
CPU, runs the twin. ``REPROLAB_TRITON=0`` forces the twin everywhere. Triton is imported only
when it is used.
"""
from __future__ import annotations

import functools
import os

import torch

from reprolab.kernels.cosmos import reference
from reprolab.kernels.cosmos.reference import ASSOCIATIONS, NS5_COEFFS

BACKENDS = (None, "torch", "triton")

NS_DTYPES = {"auto": None, "bfloat16": torch.bfloat16, "float32": torch.float32}

__all__ = ["BACKENDS", "NS5_COEFFS", "NS_DTYPES", "TRITON_BY_DEFAULT", "backend_for", "cpu_flags", "gemm_epilogue",
           "native_bf16", "newton_schulz5", "ns_dtype_for", "project_moments"]


@functools.lru_cache(maxsize=None)
def _triton_importable() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


TRITON_BY_DEFAULT = frozenset({"newton_schulz5"})  # the kernels auto runs on Triton (module docstring)


def backend_for(t: torch.Tensor, backend: str | None = None, kernel: str = "newton_schulz5") -> str:
    """The backend that runs ``kernel`` for tensor ``t``: ``backend`` if given, else auto (module doc)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {BACKENDS}")
    if backend is not None:
        return backend
    if (kernel in TRITON_BY_DEFAULT and t.is_cuda and t.dtype != torch.float64
            and os.environ.get("REPROLAB_TRITON", "1") != "0" and _triton_importable()):
        return "triton"
    return "torch"


BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # x86 bf16 dot-product instructions (oneDNN's bf16 GEMMs)


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags, read once: `torch.cpu.get_capabilities` where torch has it (2.13 does),
    else the ``flags`` line of /proc/cpuinfo (Linux); empty where neither says."""
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is not None:
        return frozenset(name for name, on in get().items() if on is True)
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.partition(":")[2].split())


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 GEMMs in hardware: CUDA GPUs from Ampere (sm_80) on, and CPUs with
    AVX512-BF16 or AMX-BF16 (`cpu_flags`), where oneDNN's bf16 GEMMs take fp32 accumulation at 2-4x
    the fp32 speed (square 256-2048, one thread, AMD EPYC with AVX512-BF16: benchmarks/cosmos_step.md).
    Elsewhere bf16 GEMMs take a slow path: on an AMD EPYC VM with AVX2 only (2026-12-04, torch 2.13, one thread)
    a square bf16 product cost 64x (256) and 91x (1024) the fp32 one; ARM is not measured."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    return device.type == "cpu" and not BF16_CPU_FLAGS.isdisjoint(cpu_flags())


def ns_dtype_for(t: torch.Tensor, dtype: torch.dtype | str | None = None) -> torch.dtype:
    """The Newton-Schulz dtype: ``dtype`` if given (a torch dtype or a `NS_DTYPES` name), else auto:
    bf16 where the device runs bf16 GEMMs natively (`native_bf16`; the official codes' precision),
    fp32 elsewhere."""
    if isinstance(dtype, str):
        if dtype not in NS_DTYPES:
            raise ValueError(f"ns_dtype={dtype!r} is not one of {list(NS_DTYPES)}")
        dtype = NS_DTYPES[dtype]
    if dtype is None:
        return torch.bfloat16 if native_bf16(t.device) else torch.float32
    return dtype


def _impl(t: torch.Tensor, backend: str | None, kernel: str):
    if backend_for(t, backend, kernel) == "triton":
        from reprolab.kernels.cosmos import triton_kernels

        return triton_kernels
    return reference


def gemm_epilogue(a, b, *, alpha=1.0, c=None, beta=1.0, d=None, delta=1.0, out_dtype=None, out=None, backend=None):
    """out = alpha (a @ b) + beta c + delta d, in ``out_dtype`` (default a's dtype). a (M, K), b (K, N)
    (the Triton kernel also takes batches (k, M, K), (k, K, N): Newton-Schulz uses that).

    ``beta`` may be a 0-dim tensor (no host sync on GPU). ``out``: a tensor to write the result
    into; it may be ``c`` itself, which then accumulates in place without a temporary.
    """
    return _impl(a, backend, "gemm_epilogue").gemm_epilogue(a, b, alpha=alpha, c=c, beta=beta, d=d, delta=delta,
                                                            out_dtype=out_dtype, out=out)


def project_moments(G, M, U, V, *, beta1, beta2, g_coef, m_coef, mix_scale, bias2, eps, backend=None):
    """Fused COSMOS projection + moments; see `reprolab.kernels.cosmos.reference.project_moments`."""
    return _impl(G, backend, "project_moments").project_moments(G, M, U, V, beta1=beta1, beta2=beta2, g_coef=g_coef,
                                                                m_coef=m_coef, mix_scale=mix_scale, bias2=bias2, eps=eps)


def newton_schulz5(x: torch.Tensor, steps: int = 5, association: str = "cosmos", dtype=torch.bfloat16, backend=None):
    """Quintic Newton-Schulz orthogonalisation of a matrix (m, n) or of each matrix of a batch
    (k, m, n) in one set of launches; see `reprolab.kernels.cosmos.reference.newton_schulz5`.

    The Triton path runs each step as three fused GEMMs: the Gram product X X^T (symmetric: upper
    block triangle only), then for "cosmos" B = A X and X <- a X + b B + c (A B) with the axpy in
    the epilogue, for "muon" B = b A + c (A A) (symmetric, epilogue) and X <- a X + B X. The
    epilogue works in fp32 and rounds once, where torch rounds every bf16 op (differences are
    within bf16 rounding: cosmos.md §6.19).
    """
    if association not in ASSOCIATIONS:
        raise ValueError(f"association={association!r} is not one of {ASSOCIATIONS}")
    if backend_for(x, backend) == "torch":
        return reference.newton_schulz5(x, steps, association, dtype)
    from reprolab.kernels.cosmos.triton_kernels import gemm_epilogue as gemm

    a, b, c = NS5_COEFFS
    X = reference.frobenius_normalise(x, dtype)
    tall = x.size(-2) > x.size(-1)
    if tall:
        X = X.mT
    for _ in range(steps):
        A = gemm(X, X.mT, symmetric=True)
        if association == "cosmos":
            B = gemm(A, X)
            X = gemm(A, B, alpha=c, c=X, beta=a, d=B, delta=b)
        else:
            B = gemm(A, A, alpha=c, c=A, beta=b, symmetric=True)
            X = gemm(B, X, c=X, beta=a)
    return X.mT if tall else X
