"""TempNet's decode path (`TempNet.temper`, what the output head's hook returns): the eager fused path equals
logits / tau of the spec's formula, falls back to the module call where hooks must see tau, follows weight, dtype
and load changes; the C kernel of the compiled path (`reprolab.kernels.tempnet.temper_cpu`, temperature.compiled=true)
equals its eager twin in place, runs for decode batches up to MAX_ROWS (larger ones and prefill run eagerly), is
built once, follows weight changes, and a compiler failure falls back to the eager path with one warning."""
from __future__ import annotations

import logging
import os
import shutil
from copy import deepcopy

import pytest
import torch

from reprolab.kernels.tempnet import temper_cpu
from methods.tempnet import TempNet, TempNetConfig
from methods.tempnet import compiled as compiled_mod
from methods.tempnet.module import tau_folded
from reprolab.models.assemble import attach_temperature
from tests.roles.conftest import tiny_lm
from tests.tempnet.test_tempnet_head import _reference_tempnet


def _net(V=40, hidden=12, seed=7, compiled=False, **kw):
    torch.manual_seed(seed)
    net = TempNet(V, hidden=hidden, tau_min=0.05, tau_max=5.0, compiled=compiled, **kw).eval()
    with torch.no_grad():  # off the initial weights (last layer at 1 / 0, scaler at 0)
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


@pytest.mark.parametrize("shape", [(4, 1, 40), (3, 5, 40), (6, 40)])
@pytest.mark.parametrize("shift_max", [False, True])
def test_eager_temper_is_logits_over_the_spec_tau(shape, shift_max):
    net = _net(shift_max=shift_max)
    logits = 3 * torch.randn(*shape)
    ref_in = logits - logits.amax(-1, keepdim=True) if shift_max else logits
    with torch.no_grad():
        out = net.temper(logits)
    assert out.shape == logits.shape
    torch.testing.assert_close(out.double(), logits.double() / _reference_tempnet(net, ref_in), rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # bf16 logits: tau in fp32, the division in bf16 (as the module-call path)
        low = logits.bfloat16()
        torch.testing.assert_close(net.temper(low), low / net(low).to(low.dtype))


def test_hooks_on_the_module_see_tau_in_eval_mode_too():
    """The DRO loss reads tau through a forward hook on ``model.temperature`` (methods/dro_lm/loss.py): with a hook
    the module is called (the fast path would skip it), also under no_grad in eval mode."""
    model = tiny_lm().eval()
    attach_temperature(model, TempNetConfig(hidden=8))
    ids = torch.randint(0, 32, (2, 6))
    taus = []
    handle = model.temperature.register_forward_hook(lambda _, __, t: taus.append(t))
    with torch.no_grad():
        hooked = model(input_ids=ids).logits
    handle.remove()
    assert len(taus) == 1 and taus[0].shape == (2, 6, 1)
    with torch.no_grad():
        fast = model(input_ids=ids).logits
    assert len(taus) == 1  # no module call on the fast path
    torch.testing.assert_close(fast, hooked)
    model.get_output_embeddings()._forward_hooks.clear()  # the raw logits, then the spec's tau
    with torch.no_grad():
        raw = model(input_ids=ids).logits
    torch.testing.assert_close(fast.double(), raw.double() / _reference_tempnet(model.temperature, raw),
                               rtol=1e-5, atol=1e-6)


def test_folded_weights_follow_in_place_changes_dtype_changes_and_assigning_loads():
    net = _net()
    logits = 3 * torch.randn(4, 1, 40)
    with torch.no_grad():
        before = net.temper(logits)
        net.last.bias.add_(1.0)  # in place (an optimizer step)
        after = net.temper(logits)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after.double(), logits.double() / _reference_tempnet(net, logits), rtol=1e-5, atol=1e-6)
    net.double()  # _apply: new data, same version counters
    with torch.no_grad():
        assert net.folded()[0].dtype == torch.float64
        torch.testing.assert_close(net.temper(logits.double()), logits.double() / _reference_tempnet(net, logits))
    other = _net(seed=3).double()
    net.load_state_dict(other.state_dict(), assign=True)  # new Parameter objects
    with torch.no_grad():
        torch.testing.assert_close(net.temper(logits.double()), other.temper(logits.double()))


def test_the_compiled_path_takes_small_contiguous_fp32_decode_batches_only():
    assert compiled_mod.takes(torch.zeros(compiled_mod.MAX_ROWS, 1, 40))
    assert not compiled_mod.takes(torch.zeros(compiled_mod.MAX_ROWS + 1, 1, 40))
    assert not compiled_mod.takes(torch.zeros(2, 3, 40)) and not compiled_mod.takes(torch.zeros(2, 40))
    assert not compiled_mod.takes(torch.zeros(2, 1, 40, dtype=torch.bfloat16))
    assert not compiled_mod.takes(torch.zeros(2, 1, 80)[..., ::2])  # not contiguous


@pytest.fixture
def kernel_cache(tmp_path, monkeypatch):
    """A fresh on-disk cache for the C kernel and a fresh in-process load (restored afterwards)."""
    if not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler on this machine (set CC or install gcc): the CPU kernel cannot be built")
    monkeypatch.setenv("REPROLAB_TEMPNET_CACHE", str(tmp_path))
    temper_cpu.load.cache_clear()
    yield tmp_path
    temper_cpu.load.cache_clear()


@pytest.mark.parametrize("V,M,rows", [(40, 12, 1), (40, 12, 8), (257, 33, 5), (1000, 256, 4), (50, 7, 19)])
@pytest.mark.parametrize("shift_max", [False, True])
def test_the_c_kernel_equals_its_twin_in_place(kernel_cache, V, M, rows, shift_max):
    """Odd vocabularies and hidden sizes, one row to more than one block of 8 rows, shift_max; zero logits stay
    finite (|x| clamped at 1e-12); the logits are divided in place; the spec's formula in float64 agrees too."""
    net = _net(V=V, hidden=M, seed=V + M, shift_max=shift_max)
    span = net.tau_max - net.tau_min
    run = temper_cpu.runner(net._params(), net.tau_min, span, shift_max, max_rows=64)
    logits = 3 * torch.randn(rows, 1, V)
    twin = logits / tau_folded(logits, net.folded(), span, shift_max)
    got = run(logits.clone())
    torch.testing.assert_close(got, twin, rtol=1e-5, atol=1e-6)
    ref_in = logits - logits.amax(-1, keepdim=True) if shift_max else logits
    torch.testing.assert_close(got.double(), logits.double() / _reference_tempnet(net, ref_in), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, logits)  # the check can fail: tau is not 1 here
    x = logits.clone()
    assert run(x) is x and torch.equal(x, got)
    zero = run(torch.zeros(2, 1, V))
    assert torch.equal(zero, torch.zeros(2, 1, V))


def test_the_c_kernel_refuses_what_it_cannot_read_safely(kernel_cache):
    """Logits of another vocabulary, dtype, layout or more rows than bound: None (the caller's eager path), the
    logits untouched; parameters that are not fp32: an error at binding."""
    net = _net()
    run = temper_cpu.runner(net._params(), net.tau_min, net.tau_max - net.tau_min, False, max_rows=4)
    wide = 3 * torch.randn(2, 1, 80)
    for x in (3 * torch.randn(2, 1, 41), (3 * torch.randn(2, 1, 40)).bfloat16(), wide[..., ::2],
              3 * torch.randn(5, 1, 40), 3 * torch.randn(2, 3, 40), 3 * torch.randn(2, 40)):
        before = x.clone()
        assert run(x) is None and torch.equal(x, before)
    assert run(3 * torch.randn(4, 1, 40)) is not None
    with pytest.raises(ValueError, match="fp32"):
        temper_cpu.runner(tuple(p.double() for p in net._params()), 0.05, 4.95, False, 8)


def test_the_compiled_path_equals_its_eager_twin_and_follows_weight_changes(kernel_cache, monkeypatch):
    net, twin = _net(compiled=True, shift_max=True), _net(shift_max=True)
    builds, runs = [], []
    real_build, real_runner = temper_cpu.build, temper_cpu.runner
    monkeypatch.setattr(temper_cpu, "build", lambda *a: builds.append(a) or real_build(*a))

    def counted(*args):
        run = real_runner(*args)

        def wrapped(x):
            out = run(x)
            if out is not None:
                runs.append(tuple(x.shape))
            return out

        return wrapped

    monkeypatch.setattr(temper_cpu, "runner", counted)
    with torch.no_grad():
        for shape in [(3, 7, 40), (4, 1, 40), (1, 1, 40), (compiled_mod.MAX_ROWS, 1, 40), (64, 40),
                      (compiled_mod.MAX_ROWS + 1, 1, 40)]:
            logits = 3 * torch.randn(*shape)
            torch.testing.assert_close(net.temper(logits.clone()), twin.temper(logits), rtol=1e-5, atol=1e-6)
        # decode steps up to MAX_ROWS rows ran the kernel; prefill and larger decode batches the eager GEMMs
        assert runs == [(4, 1, 40), (1, 1, 40), (compiled_mod.MAX_ROWS, 1, 40)]
        low = (3 * torch.randn(4, 1, 40)).bfloat16()  # bf16 logits: the eager path
        torch.testing.assert_close(net.temper(low), twin.temper(low))
        assert len(runs) == 3
        logits = 3 * torch.randn(4, 1, 40)
        for p in (net.proj[0].weight, twin.proj[0].weight, net.scaler, twin.scaler, net.last.bias, twin.last.bias):
            p.mul_(1.5)  # an optimizer step between decodes: the kernel reads the parameters, no rebinding
        torch.testing.assert_close(net.temper(logits.clone()), twin.temper(logits), rtol=1e-5, atol=1e-6)
    assert len(runs) == 4 and len(builds) == 1 and len(list(kernel_cache.glob("*.so"))) == 1
    temper_cpu.load.cache_clear()  # a new process: the cached library is loaded, not rebuilt
    copy = deepcopy(net)  # a frozen reference copy after decoding: the runner is not copied, the copy binds its own
    with torch.no_grad():
        torch.testing.assert_close(copy.temper(logits.clone()), net.temper(logits.clone()))
        copy.proj[3].bias.add_(0.5)
        assert not torch.allclose(copy.temper(logits.clone()), net.temper(logits.clone()))
    assert len(builds) == 1 and len(runs) == 8
    other = _net(seed=3, compiled=True, shift_max=True)  # an assigning load: rebound to the new parameters
    net.load_state_dict(other.state_dict(), assign=True)
    with torch.no_grad():
        torch.testing.assert_close(net.temper(logits.clone()), other.temper(logits.clone()))
    net.double()  # fp64 parameters: the eager path
    with torch.no_grad():
        torch.testing.assert_close(net.temper(logits.double()), other.double().temper(logits.double()))
    assert compiled_mod.compiled_runner(net, logits.double()) is None and len(runs) == 10


def test_a_compiler_failure_warns_once_and_decodes_eagerly(kernel_cache, monkeypatch, caplog):
    monkeypatch.setenv("CC", str(kernel_cache / "no-such-cc"))
    net, twin = _net(compiled=True), _net()
    logits = 3 * torch.randn(4, 1, 40)
    with caplog.at_level(logging.WARNING, logger="methods.tempnet.compiled"), torch.no_grad():
        first, second = net.temper(logits), net.temper(logits)
    warnings = [r for r in caplog.records if "compiled decode path (temperature.compiled=True) is unavailable" in r.message]
    assert len(warnings) == 1 and "on cpu (FileNotFoundError" in warnings[0].message
    with torch.no_grad():
        torch.testing.assert_close(first, twin.temper(logits))
    torch.testing.assert_close(second, first)
    monkeypatch.delenv("CC")
    monkeypatch.setenv("PATH", str(kernel_cache))
    with pytest.raises(RuntimeError, match="no C compiler found .set CC or install gcc."):
        temper_cpu.compiler()


def test_config_passes_compiled_to_the_module_and_the_default_is_the_kernel_on_cpu_only(kernel_cache):
    assert TempNetConfig(compiled=True).module(32).compiled is True
    assert TempNetConfig(compiled=False).module(32).compiled is False
    net = TempNetConfig(hidden=12).module(40).eval()
    assert net.compiled is None
    logits = 3 * torch.randn(4, 1, 40)
    with torch.no_grad():
        net.temper(logits)
    assert net.__dict__["_fast"]  # the C kernel on CPU by default
    assert compiled_mod.KERNEL_DEVICES[None] == ("cpu",)  # the Triton kernel (not timed) only when asked for
    net.compiled = False
    net.__dict__.pop("_fast")
    with torch.no_grad():
        net.temper(logits)
    assert "_fast" not in net.__dict__
