"""TempNet's eval-mode decode path as one ahead-of-time compiled CPU graph (opt-in: ``temperature.compiled=true``).

At the tiny LLaMA a decode step is ~500 aten calls of a few µs each, and TempNet's eager path (`TempNet.temper`,
12 calls + the division) costs ~7 % of it, set by its call count rather than by its arithmetic
(benchmarks/results/tempnet_step.md). Here ``logits / tau(logits)`` (`methods.tempnet.module.tau_folded`, the eager
twin, and the division) is exported once with the folded weights as inputs and a dynamic row count (1 to `MAX_ROWS`),
compiled by AOTInductor (C++ codegen, gcc) into a shared library, and called through its C++ runner: one call per
decode step. Its three matrix products are written as broadcast products summed over the input dimension
(`reduced_linear`), so inductor fuses the whole graph into its own C++ loops instead of calling the GEMM library three
times: at a decode step between two LM steps each library call runs cold (~20-30 µs each measured in place, against
~5 µs in a tight loop), so the fused graph costs ~40 µs in place against ~105 µs with the library's GEMMs (tiny LLaMA,
hid 32). Those loops re-read the weights per row, so they lose to the GEMM library beyond a few rows: prefill and
decode batches over `MAX_ROWS` rows take the eager path. torch.compile (dynamo) was slower than eager here: its guards
and Python wrappers cost more than the calls it saves.

The package is cached on disk (``REPROLAB_TEMPNET_CACHE`` or ``~/.cache/reprolab/tempnet``), keyed by the vocabulary,
hidden size, dtype, tau range, shift_max, the torch version and this graph's source, so a process compiles it at
most once (~30-50 s on 2 CPU cores) and later processes load it. The weights are inputs, not constants: training
between decodes needs no recompilation. On CPU logits in TempNet's dtype only (else the eager path); where the
compiler is missing or fails, one warning and the eager path. On CUDA, ``compiled=true`` runs the Triton kernel
`kernels.tempnet.temper_triton` instead (one program per row; checked against the eager twin at its first call and
under TRITON_INTERPRET=1 in the tests; not timed, no GPU here).
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import os
import weakref
from pathlib import Path

import torch

log = logging.getLogger(__name__)

_RUNNERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # TempNet -> {key: run or None}
MAX_ROWS = 8  # decode rows the compiled graph takes; above it the eager path's GEMMs are faster (V 4096, hid 256: ~8)


def takes(x: torch.Tensor) -> bool:
    """Whether the compiled path takes these logits: a decode step ``(rows, 1, V)``, at most `MAX_ROWS` rows on CPU
    (the Triton kernel on CUDA takes any row count)."""
    return x.dim() == 3 and x.shape[1] == 1 and (x.device.type != "cpu" or x.shape[0] <= MAX_ROWS)


def reduced_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, w, b)`` as a broadcast product summed over the input dimension: what inductor fuses into its own
    loops (no GEMM library call) when the rows are few."""
    y = (x.unsqueeze(-2) * w).sum(-1)
    return y if b is None else y + b


class TemperGraph(torch.nn.Module):
    """``logits / tau(logits)`` from the folded weights (inputs), logits ``(N, 1, V)``: what gets compiled."""

    def __init__(self, span: float, shift_max: bool):
        super().__init__()
        self.span, self.shift_max = span, shift_max

    def forward(self, x, w1, b1, w2, b2, wy, by, lo):
        from methods.tempnet.module import tau_folded

        return x / tau_folded(x, (w1, b1, w2, b2, wy, by, lo), self.span, self.shift_max, linear=reduced_linear)


def cache_dir() -> Path:
    return Path(os.environ.get("REPROLAB_TEMPNET_CACHE") or Path.home() / ".cache" / "reprolab" / "tempnet")


def package_path(net, dtype: torch.dtype) -> Path:
    """The cached package's path: one per (V, M, dtype, tau range, shift_max, torch version, graph source)."""
    from methods.tempnet.module import tau_folded

    src = inspect.getsource(tau_folded) + inspect.getsource(TemperGraph) + inspect.getsource(reduced_linear)
    key = (f"V{net.feature_dim}-M{net.hidden}-rows{MAX_ROWS}-{str(dtype).split('.')[-1]}-{net.tau_min!r}-{net.tau_max!r}-"
           f"shift{int(net.shift_max)}-torch{torch.__version__}")
    digest = hashlib.sha256((key + src).encode()).hexdigest()[:16]
    return cache_dir() / f"tempnet-{digest}.pt2"


def compile_package(net, dtype: torch.dtype, path: Path) -> Path:
    """Export `TemperGraph` at ``net``'s folded weights (rows dynamic, 1 to `MAX_ROWS`) and compile it with AOTInductor to ``path``."""
    folded = [t.detach().to(dtype) for t in net.folded()]
    x = torch.randn(2, 1, net.feature_dim, dtype=dtype)
    graph = TemperGraph(net.tau_max - net.tau_min, net.shift_max)
    rows = torch.export.Dim("rows", min=1, max=MAX_ROWS)
    with torch.no_grad():
        ep = torch.export.export(graph, (x, *folded), dynamic_shapes=({0: rows},) + (None,) * len(folded))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.pt2")
        torch._inductor.aoti_compile_and_package(ep, package_path=str(tmp))
    os.replace(tmp, path)  # atomic: a concurrent process sees no half-written package
    return path


def load_runner(path: Path):
    """A callable ``run([x, *folded]) -> [logits / tau]`` (the package's C++ runner, without the pytree wrapper)."""
    model = torch._inductor.aoti_load_package(str(path))
    loader = getattr(model, "loader", None)
    return loader.run if loader is not None else (lambda args: [model(*args)])


def triton_runner(net, x: torch.Tensor, folded: tuple):
    """On CUDA: the Triton kernel (`kernels.tempnet.temper_triton`) as ``run``, after a first call checked against the
    eager twin (a mismatch or a failure: None, and the eager path). Not timed on a GPU here."""
    from kernels.tempnet import temper_triton
    from methods.tempnet.module import tau_folded

    span, shift = net.tau_max - net.tau_min, net.shift_max

    def run(args):
        return [temper_triton.temper(args[0], tuple(args[1:]), span, shift)]

    twin = x / tau_folded(x, folded, span, shift).to(x.dtype)
    got = run([x, *folded])[0]
    if not torch.allclose(got.float(), twin.float(), rtol=1e-3, atol=1e-5):
        raise RuntimeError(f"the Triton kernel differs from its eager twin by {(got - twin).abs().max().item():.3g}")
    return run


def compiled_runner(net, x: torch.Tensor, folded: tuple):
    """The compiled ``run`` for ``net`` at decode logits ``x`` ``(rows <= MAX_ROWS, 1, V)`` (``folded``: its
    `TempNet.folded` weights), built at the first call and then kept per module, device type and dtype: on CPU the AOTInductor package (compiled or loaded; logits
    in TempNet's dtype), on CUDA the Triton kernel; None where the eager path must run (another device or dtype, no
    compiler, no triton, a failed check), with one warning."""
    w1 = folded[0]
    device = x.device.type
    if w1.device != x.device or device not in ("cpu", "cuda") or (device == "cpu" and x.dtype != w1.dtype):
        return None
    per_net = _RUNNERS.get(net)
    key = (device, x.dtype)
    if per_net is not None and key in per_net:
        return per_net[key]
    per_net = _RUNNERS.setdefault(net, {})
    per_net[key] = None
    try:
        if device == "cuda":
            per_net[key] = triton_runner(net, x, folded)
        else:
            path = package_path(net, x.dtype)
            if not path.exists():
                log.info(f"TempNet: compiling the decode path with AOTInductor into {path} (once, ~30-50 s)")
                compile_package(net, x.dtype, path)
            per_net[key] = load_runner(path)
    except Exception as e:  # noqa: BLE001 (no compiler / triton, an export or codegen failure): the eager twin
        first = str(e).splitlines()[0] if str(e) else ""
        log.warning(f"TempNet: temperature.compiled=true but the compiled decode path is unavailable on {device} "
                    f"({type(e).__name__}: {first}); using the eager path.")
    return per_net[key]
