"""TempNet's eval-mode ``logits / tau(logits)`` on CPU as one C call (`temper_cpu.c`), in place, fp32.

Why C and not aten calls or a compiled graph: at the tiny LLaMA a decode step is ~500 aten calls, and every call that
is not repeated inside the step runs cold after it (instruction caches, dispatcher tables): a lone ``x / 2`` costs
~25 µs there against ~5 µs in a tight loop, an AOTInductor-compiled graph's runner ~60 µs against ~14 µs, and even the
Python checks around a call count (a version check of 7 parameters ~12 µs). One ctypes call into a small C function
that reads the parameters themselves (no folded copies to keep in sync, no dispatcher, no allocation: the logits are
divided in place) is what is left (benchmarks/tempnet_step.py). Its PyTorch twin, which defines the semantics, is the
module's eval-mode formula (`methods.tempnet.module.TempNet.pooled`, equal to the eager decode path `tau_folded` up to
rounding) followed by the division.

The shared library is built once per source, compiler, flags and CPU (``-march=native``) with the C compiler of
``$CC`` (else ``cc`` / ``gcc``, ~0.3 s) into ``REPROLAB_TEMPNET_CACHE`` (default ``~/.cache/reprolab/tempnet``),
written atomically, and loaded with ctypes; `load` raises where no compiler is found or the build fails.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("temper_cpu.c")
FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-shared", "-fPIC")
_P, _I, _F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float


def cache_dir() -> Path:
    return Path(os.environ.get("REPROLAB_TEMPNET_CACHE") or Path.home() / ".cache" / "reprolab" / "tempnet")


def compiler() -> str:
    """The C compiler: ``$CC``, else ``cc`` or ``gcc`` on the PATH (RuntimeError naming the fix when none is)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise RuntimeError("no C compiler found (set CC or install gcc)")
    return cc


def _cpu_flags() -> str:
    """What ``-march=native`` depends on: the CPU's feature flags (Linux), else the machine name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def library_path(cc: str) -> Path:
    key = "\n".join([SOURCE.read_text(), cc, " ".join(FLAGS), platform.machine(), _cpu_flags()])
    return cache_dir() / f"temper_cpu-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def build(cc: str, path: Path) -> Path:
    """Compile `SOURCE` into ``path`` (atomically: a concurrent process never loads half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.so")
    proc = subprocess.run([cc, *FLAGS, str(SOURCE), "-o", str(tmp), "-lm"], capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{cc} failed to build {SOURCE.name}: {proc.stderr.strip()[-500:]}")
    os.replace(tmp, path)
    return path


@functools.lru_cache(maxsize=None)
def load():
    """The C function ``temper_rows`` (built at the first call of a process unless cached on disk)."""
    cc = compiler()
    path = library_path(cc)
    if not path.exists():
        build(cc, path)
    fn = ctypes.CDLL(str(path)).temper_rows
    fn.argtypes = [_P, _I, _I, _I, _P, _P, _P, _P, _P, _P, _P, _F, _F, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def runner(params: tuple, tau_min: float, span: float, shift_max: bool, max_rows: int):
    """``run(x)``: ``x / tau(x)`` divided in place and returned, for fp32 CPU logits ``x`` ``(rows <= max_rows, 1, V)``,
    contiguous; None for any other ``x`` (the caller's eager path). ``params``: the module's (W1, b1, W2, b2, s, v, c),
    read by the kernel at every call (an optimizer step or a load between calls is seen); the closure holds their
    storages, so the pointers stay valid."""
    fn = load()
    held = tuple(p.detach() for p in params)
    if any(p.dtype != torch.float32 or p.device.type != "cpu" or not p.is_contiguous() for p in held):
        raise ValueError("the CPU kernel takes contiguous fp32 CPU parameters")
    M, V = held[0].shape
    bound = (V, M, *(p.data_ptr() for p in held), float(tau_min), float(span), int(shift_max))
    f32 = torch.float32

    def run(x: torch.Tensor, held=held) -> torch.Tensor | None:
        shape = x.shape
        if not (len(shape) == 3 and shape[1] == 1 and shape[2] == V and shape[0] <= max_rows and x.dtype is f32
                and x.is_cpu and x.is_contiguous()):
            return None
        if fn(x.data_ptr(), shape[0], *bound):
            raise MemoryError(f"TempNet's CPU kernel could not allocate {16 * M} floats of work space")
        return x

    return run
