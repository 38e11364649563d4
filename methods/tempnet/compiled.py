"""TempNet's eval-mode decode step as one kernel call (``temperature.compiled``: null, the default, on CPU; true also
on CUDA; false never).

At the tiny LLaMA a decode step is ~500 aten calls of a few µs each, and TempNet's eager path (`TempNet.temper`,
12 calls + the division) adds ~8 % to it, set by its call count rather than by its arithmetic: between two LM steps
every call that the step does not repeat runs cold (benchmarks/results/tempnet_step.md). Here ``logits / tau(logits)``
is one call: on CPU the C kernel `reprolab.kernels.tempnet.temper_cpu` (fp32 logits, divided in place; it reads the module's
parameters at the call, so the fast path needs no check that they changed; built once with the C compiler and cached
on disk), on CUDA the Triton kernel `reprolab.kernels.tempnet.temper_triton` (one program per row, at `TempNet.folded`; checked
against the eager twin at its first call and under TRITON_INTERPRET=1 in the tests; not timed, no GPU here). Training
between decodes needs no rebuild. The twin of both is the eager path, `methods.tempnet.module.tau_folded` and the
division. On CPU only decode steps of up to `MAX_ROWS` rows take the kernel: it reads each weight row once per 8 rows,
so prefill and larger batches stay with the eager path's GEMMs. Where no kernel is available (no compiler, no triton,
a failed check): one warning per module and the eager path.
"""
from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

KERNEL_DEVICES = {None: ("cpu",), True: ("cpu", "cuda"), False: ()}  # temperature.compiled -> where a kernel runs
MAX_ROWS = 8  # CPU decode rows the kernel takes (one block of temper_cpu.c); above it the eager path's GEMMs win


def takes(x: torch.Tensor) -> bool:
    """Whether a kernel can take these logits: a contiguous decode step ``(rows, 1, V)``; on CPU fp32 and at most
    `MAX_ROWS` rows (the Triton kernel on CUDA takes any row count and dtype)."""
    return (x.dim() == 3 and x.shape[1] == 1 and x.is_contiguous()
            and (x.device.type != "cpu" or (x.shape[0] <= MAX_ROWS and x.dtype == torch.float32)))


def triton_runner(net, device: torch.device):
    """On CUDA: the Triton kernel as ``run(logits) -> logits / tau`` (None where `takes` says no) at the module's
    folded weights as they are at the call (`TempNet.folded`); its first call is checked against the eager twin (a
    mismatch: one warning, and this run returns None from then on, so the eager path runs)."""
    from reprolab.kernels.tempnet import temper_triton
    from methods.tempnet.module import tau_folded

    span, shift = net.tau_max - net.tau_min, net.shift_max
    state = {"checked": False, "ok": True}

    def run(logits):
        if not state["ok"] or logits.device != device or not takes(logits):
            return None
        folded = net.folded()
        out = temper_triton.temper(logits, folded, span, shift)
        if not state["checked"]:
            twin = logits / tau_folded(logits, folded, span, shift).to(logits.dtype)
            state["checked"] = True
            if not torch.allclose(out.float(), twin.float(), rtol=1e-3, atol=1e-5):
                state["ok"] = False
                log.warning(f"TempNet: the Triton kernel differs from its eager twin by "
                            f"{(out - twin).abs().max().item():.3g}; using the eager path.")
                return None
        return out

    return run


def compiled_runner(net, x: torch.Tensor):
    """``run(logits) -> logits / tau(logits)``, or None from ``run`` for logits it does not take (`takes`; then the
    eager path), for ``net`` on the device of the decode logits ``x``: on CPU the C kernel (fp32 parameters; in place,
    reading the parameters at each call), on CUDA the Triton kernel where ``net.compiled`` is True. None where no
    kernel runs (another device, CUDA without compiled=True, parameters not fp32 on CPU, no compiler, no triton, a
    failed check): one warning in the last three cases."""
    device = x.device.type
    weight = net.proj[0].weight
    if (weight.device != x.device or device not in KERNEL_DEVICES[net.compiled]
            or (device == "cpu" and weight.dtype != torch.float32)):
        return None
    try:
        if device == "cuda":
            import triton  # noqa: F401 (missing: the warning below)

            return triton_runner(net, x.device)
        from reprolab.kernels.tempnet import temper_cpu

        return temper_cpu.runner(net._params(), net.tau_min, net.tau_max - net.tau_min, net.shift_max, MAX_ROWS)
    except Exception as e:  # noqa: BLE001 (no compiler / triton, a build or check failure): the eager twin
        first = str(e).splitlines()[0] if str(e) else ""
        log.warning(f"TempNet: the compiled decode path (temperature.compiled={net.compiled}) is unavailable on "
                    f"{device} ({type(e).__name__}: {first}); using the eager path (set temperature.compiled=false "
                    "to silence this).")
        return None
