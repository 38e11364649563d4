"""The TempNet Triton kernel vs its PyTorch twin, run in a subprocess with TRITON_INTERPRET=1 set before triton is
imported (see test_temper_kernel.py). Prints one JSON dict of the largest relative differences."""
from __future__ import annotations

import json
import os

os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402

from reprolab.kernels.tempnet import temper_triton  # noqa: E402
from methods.tempnet.compiled import triton_runner  # noqa: E402
from methods.tempnet.module import TempNet, tau_folded  # noqa: E402


def checks() -> dict:
    out = {}
    for V, M, rows, shift, block_v, block_k in [(40, 12, 3, False, 16, 4), (40, 12, 5, True, 64, 16),
                                                (100, 32, 2, False, 32, 8), (64, 20, 1, True, 16, 8)]:
        torch.manual_seed(V + M)
        net = TempNet(V, hidden=M, tau_min=0.05, tau_max=5.0, shift_max=shift).eval()
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.3 * torch.randn_like(p))
            logits = 3 * torch.randn(rows, 1, V)
            folded, span = net.folded(), net.tau_max - net.tau_min
            twin = logits / tau_folded(logits, folded, span, shift)
            got = temper_triton.temper(logits, folded, span, shift, block_v=block_v, block_k=block_k)
            zero = temper_triton.temper(torch.zeros(2, 1, V), folded, span, shift, block_v=block_v, block_k=block_k)
        out[f"V{V}_M{M}_shift{int(shift)}"] = {"rel": float(((got - twin).abs() / twin.abs().clamp_min(1e-6)).max()),
                                              "shape": list(got.shape) == list(logits.shape),
                                              "zero_finite": bool(torch.isfinite(zero).all())}
    net = TempNet(40, hidden=12, tau_min=0.05, tau_max=5.0).eval()  # the CUDA runner (first call checked)
    with torch.no_grad():
        logits = 3 * torch.randn(4, 1, 40)
        run = triton_runner(net, logits.device)
        got = run(logits)
        twin = logits / net(logits)
    out["runner"] = {"rel": float(((got - twin).abs() / twin.abs().clamp_min(1e-6)).max()), "shape": True,
                     "zero_finite": True}
    return out


if __name__ == "__main__":
    print(json.dumps(checks()))
