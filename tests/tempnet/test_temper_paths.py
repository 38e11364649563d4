"""TempNet's decode path (`TempNet.temper`, what the output head's hook returns): the eager fused path equals
logits / tau of the spec's formula, falls back to the module call where hooks must see tau, follows weight, dtype
and load changes; the AOTInductor-compiled graph (`methods.tempnet.compiled`, temperature.compiled=true) equals
its eager twin at any decode batch up to MAX_ROWS without recompiling (larger ones and prefill run eagerly), its
matrix products written as reductions equal F.linear, and a compiler failure falls back to the eager path."""
from __future__ import annotations

import logging
from copy import deepcopy

import pytest
import torch

from methods.tempnet import TempNet, TempNetConfig
from methods.tempnet import compiled as compiled_mod
from methods.tempnet.module import tau_folded
from reprolab.models.assemble import attach_temperature
from tests.roles.conftest import tiny_lm
from tests.tempnet.test_tempnet_head import _reference_tempnet


def _net(V=40, hidden=12, seed=7, **kw):
    torch.manual_seed(seed)
    net = TempNet(V, hidden=hidden, tau_min=0.05, tau_max=5.0, **kw).eval()
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


def test_the_compiled_graphs_reduced_linear_is_f_linear_and_gives_the_same_tau():
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(5, 1, 40, generator=g), torch.randn(12, 40, generator=g), torch.randn(12, generator=g)
    torch.testing.assert_close(compiled_mod.reduced_linear(x, w, b), torch.nn.functional.linear(x, w, b))
    torch.testing.assert_close(compiled_mod.reduced_linear(x, w), x @ w.T)
    net = _net()
    for shift in (False, True):
        eager = tau_folded(3 * x, net.folded(), 4.95, shift)
        reduced = tau_folded(3 * x, net.folded(), 4.95, shift, linear=compiled_mod.reduced_linear)
        torch.testing.assert_close(reduced, eager)
        assert not torch.equal(eager, tau_folded(3 * x, net.folded(), 4.95, not shift))  # the check can fail


def test_the_compiled_path_takes_small_decode_batches_only():
    assert compiled_mod.takes(torch.zeros(compiled_mod.MAX_ROWS, 1, 40))
    assert not compiled_mod.takes(torch.zeros(compiled_mod.MAX_ROWS + 1, 1, 40))
    assert not compiled_mod.takes(torch.zeros(2, 3, 40)) and not compiled_mod.takes(torch.zeros(2, 40))


def _compiled_pair(tmp_path, monkeypatch, **kw):
    monkeypatch.setenv("REPROLAB_TEMPNET_CACHE", str(tmp_path))
    net = _net(compiled=True, **kw)
    twin = _net(compiled=False, **kw)
    return net, twin


@pytest.mark.slow  # one AOTInductor compile (gcc): ~20-50 s on 2 CPU cores
def test_compiled_graph_equals_its_eager_twin_for_any_decode_batch_without_recompiling(tmp_path, monkeypatch):
    net, twin = _compiled_pair(tmp_path, monkeypatch, shift_max=True)
    builds, runs = [], []
    real, real_load = compiled_mod.compile_package, compiled_mod.load_runner
    monkeypatch.setattr(compiled_mod, "compile_package", lambda *a: builds.append(a) or real(*a))

    def counted(path):
        run = real_load(path)
        return lambda args: runs.append(args[0].shape) or run(args)

    monkeypatch.setattr(compiled_mod, "load_runner", counted)
    with torch.no_grad():
        for shape in [(4, 1, 40), (1, 1, 40), (compiled_mod.MAX_ROWS, 1, 40), (3, 7, 40), (64, 40),
                      (compiled_mod.MAX_ROWS + 1, 1, 40)]:
            logits = 3 * torch.randn(*shape)
            torch.testing.assert_close(net.temper(logits), twin.temper(logits), rtol=1e-5, atol=1e-6)
    # decode steps up to MAX_ROWS rows ran the graph; prefill and larger decode batches the eager GEMMs
    assert runs == [(4, 1, 40), (1, 1, 40), (compiled_mod.MAX_ROWS, 1, 40)]
    with torch.no_grad():
        logits = 3 * torch.randn(4, 1, 40)
        for p in (net.proj[0].weight, twin.proj[0].weight):  # the weights are inputs: no recompilation
            p.mul_(1.5)
        torch.testing.assert_close(net.temper(logits), twin.temper(logits), rtol=1e-5, atol=1e-6)
    assert len(builds) == 1 and len(list(tmp_path.glob("*.pt2"))) == 1
    fresh, fresh_twin = _net(compiled=True, shift_max=True), _net(shift_max=True)  # same shape: the cached package
    with torch.no_grad():
        torch.testing.assert_close(fresh.temper(logits), fresh_twin.temper(logits), rtol=1e-5, atol=1e-6)
    assert len(builds) == 1
    copy = deepcopy(fresh)  # a frozen reference copy after decoding: the runner is not copied, the copy reloads it
    with torch.no_grad():
        torch.testing.assert_close(copy.temper(logits), fresh.temper(logits))
        fresh.proj[3].bias.add_(0.5)  # a weight change after the fast path was set: followed
        fresh_twin.proj[3].bias.add_(0.5)
        decode = 3 * torch.randn(4, 1, 40)
        torch.testing.assert_close(fresh.temper(decode), fresh_twin.temper(decode), rtol=1e-5, atol=1e-6)
        fresh.proj[3].bias.add_(0.5)
        fresh_twin.proj[3].bias.add_(0.5)
        torch.testing.assert_close(fresh.temper(decode), fresh_twin.temper(decode), rtol=1e-5, atol=1e-6)
    assert len(builds) == 1
    assert compiled_mod.compiled_runner(fresh, logits.bfloat16(), fresh.folded()) is None  # other dtype: eager


def test_a_compiler_failure_warns_once_and_decodes_eagerly(tmp_path, monkeypatch, caplog):
    net, twin = _compiled_pair(tmp_path, monkeypatch)

    def broken(*_):
        raise RuntimeError("no C++ compiler found\nmore")

    monkeypatch.setattr(compiled_mod, "compile_package", broken)
    logits = 3 * torch.randn(4, 1, 40)
    with caplog.at_level(logging.WARNING, logger="methods.tempnet.compiled"), torch.no_grad():
        first, second = net.temper(logits), net.temper(logits)
    warnings = [r for r in caplog.records if "compiled decode path is unavailable" in r.message]
    assert len(warnings) == 1 and "on cpu (RuntimeError: no C++ compiler found)" in warnings[0].message
    with torch.no_grad():
        torch.testing.assert_close(first, twin.temper(logits))
    torch.testing.assert_close(second, first)


def test_config_passes_compiled_to_the_module():
    assert TempNetConfig(compiled=True).module(32).compiled is True
    assert TempNetConfig().module(32).compiled is False
