"""The TempNet heads (spec ../shared/papers/tempnet.md §2.3, §6.6-6.8): an independent re-computation
of the architecture, tau within its bounds, tau >= the midpoint at initialisation, the stop-gradient,
the parameter count, and the bad inputs (bounds, vocabulary)."""
from __future__ import annotations

import pytest
import torch

from methods.tempnet import TempGenerator, TempNet, TempNetConfig
from reprolab.checks import ConfigError
from reprolab.models.assemble import attach_temperature
from tests.roles.conftest import tiny_lm


def _reference_tempnet(net: TempNet, logits: torch.Tensor) -> torch.Tensor:
    """The spec's formula in float64 from the module's weights (eval mode: no dropout)."""
    W1, b1 = net.proj[0].weight.double(), net.proj[0].bias.double()
    W2, b2 = net.proj[3].weight.double(), net.proj[3].bias.double()
    x = logits.double()
    x = x / x.norm(dim=-1, keepdim=True)
    x = torch.sigmoid(x @ W1.T + b1) @ W2.T + b2
    w = torch.softmax(x / net.scaler.double().exp(), -1)
    z = ((w - 1 / net.hidden) * x) @ net.last.weight.double().T + net.last.bias.double()
    return (net.tau_max - net.tau_min) * torch.sigmoid(z) + net.tau_min


def test_tempnet_matches_the_formula_of_the_spec():
    torch.manual_seed(0)
    net = TempNet(50, hidden=16, tau_min=0.5, tau_max=5.0).eval()
    with torch.no_grad():  # move every weight off its initial value
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    logits = 4 * torch.randn(7, 50)
    torch.testing.assert_close(net(logits).double(), _reference_tempnet(net, logits), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shift_max", [False, True])
def test_inference_path_matches_the_formula_and_follows_weight_changes(shift_max):
    """Eval mode without autograd (every decode step) takes `TempNet.inference` (the pooling temperature folded
    into cached weights): equal to the spec's formula on (B, T, V) logits, in fp32 and from bf16 logits (as the general path), and the
    cache is rebuilt when a weight changes in place (a load_state_dict, an optimizer step)."""
    torch.manual_seed(7)
    net = TempNet(40, hidden=12, tau_min=0.05, tau_max=5.0, shift_max=shift_max).eval()
    logits = 3 * torch.randn(3, 5, 40)
    ref_in = logits - logits.amax(-1, keepdim=True) if shift_max else logits
    for _ in range(2):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.3 * torch.randn_like(p))
            tau = net(logits)
            assert "_folded" in net.__dict__  # the inference path ran
            torch.testing.assert_close(tau.double(), _reference_tempnet(net, ref_in), rtol=1e-5, atol=1e-6)
            low = logits.bfloat16()
            torch.testing.assert_close(net(low), net.tau_min + (net.tau_max - net.tau_min) * torch.sigmoid(net.pooled(low)))
        torch.testing.assert_close(net(logits), tau)  # with autograd: the general path, same value
    with torch.no_grad():
        zero = net(torch.zeros(2, 40))  # F.normalize's clamp: a zero vector reads as zero, no NaN
    assert torch.isfinite(zero).all()


@pytest.mark.parametrize("bounds", [(0.5, 5.0), (0.01, 2.0), (0.01, 1.2)])
def test_tau_stays_within_bounds_and_starts_above_the_midpoint(bounds):
    torch.manual_seed(1)
    lo, hi = bounds
    net = TempNet(64, hidden=32, tau_min=lo, tau_max=hi).eval()
    for scale in (1e-3, 1.0, 1e4):
        tau = net(scale * torch.randn(100, 64))
        assert tau.shape == (100, 1) and (tau >= lo).all() and (tau <= hi).all()
        assert (net.pooled(scale * torch.randn(100, 64)) >= -1e-6).all()  # softmax-pool >= mean-pool at init
        assert (tau >= (lo + hi) / 2 - 1e-6).all()
    net.train()  # with dropout too
    assert ((net(torch.randn(50, 64)) >= lo) & (net(torch.randn(50, 64)) <= hi)).all()


def test_clip_tempgenerator_bounds_and_init():
    torch.manual_seed(2)
    gen = TempGenerator(8, prototypes=16).eval()
    tau = gen(torch.nn.functional.normalize(torch.randn(40, 8), dim=-1))
    assert tau.shape == (40,) and (tau >= 0.005).all() and (tau <= 0.05).all()
    assert torch.isclose(gen.scaler.exp(), torch.tensor(0.01))
    feats = torch.randn(16, 8)
    gen.init_prototypes(feats)
    assert torch.equal(gen.prototypes.data, feats)


def test_the_lm_gets_no_gradient_through_tau():
    model = tiny_lm()
    attach_temperature(model, TempNetConfig(hidden=8))
    ids = torch.randint(0, 32, (2, 6))
    taus = []
    model.temperature.register_forward_hook(lambda _, __, t: taus.append(t))
    model(input_ids=ids)
    taus[-1].sum().backward()
    lm = [p.grad for n, p in model.named_parameters() if not n.startswith("temperature.")]
    assert all(g is None or not g.any() for g in lm)
    assert model.temperature.last.weight.grad.abs().sum() > 0


def test_parameter_count_for_llama_vocabulary():
    """V*256 + 256 + 256*256 + 256 + 1 + 257 (spec §2.3: about 8.3M for V = 32000)."""
    n = sum(p.numel() for p in TempNet(32000).parameters())
    assert n == 32000 * 256 + 256 + 256 * 256 + 256 + 1 + 257


@pytest.mark.parametrize("kw, match", [({"tau_min": 2.0, "tau_max": 1.0}, "inverted"),
                                       ({"tau_min": 0.0}, "method.tau_min"),
                                       ({"tau_max": -1.0}, "method.tau_max")])
def test_bad_bounds_fail_naming_the_key(kw, match):
    with pytest.raises(ConfigError, match=match):
        TempNetConfig(**kw)


def test_vocabulary_mismatch_fails_naming_both_sizes():
    with pytest.raises(ConfigError, match=r"temperature.vocab_size=50304 and the model's head gives 32 logits"):
        attach_temperature(tiny_lm(), TempNetConfig(vocab_size=50304))
    attach_temperature(tiny_lm(), TempNetConfig(vocab_size=32))  # the right size is fine


def test_tempnet_on_a_dual_encoder_or_tempnet_clip_on_an_lm_names_the_fix():
    from methods.tempnet_clip import TempNetClipConfig
    from reprolab.models.config import ClipMLP

    with pytest.raises(ConfigError, match="model=clip_mlp"):
        attach_temperature(tiny_lm(), TempNetClipConfig())
    with pytest.raises(ConfigError, match="no output head"):
        attach_temperature(ClipMLP().build(), TempNetConfig())


def test_shift_max_feeds_logits_minus_their_max():
    """shift_max (the root tempnet.py's generation branch) = the plain head on logits - max(logits); it differs
    from the plain head on the raw logits (the L2 normalisation is not shift-invariant)."""
    torch.manual_seed(5)
    plain = TempNet(20, hidden=8, tau_min=0.1, tau_max=3.0).eval()
    shifted = TempNet(20, hidden=8, tau_min=0.1, tau_max=3.0, shift_max=True).eval()
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(torch.randn_like(p))
        shifted.load_state_dict(plain.state_dict())
    logits = torch.randn(4, 20) + 3.0
    torch.testing.assert_close(shifted(logits), plain(logits - logits.amax(-1, keepdim=True)))
    assert not torch.allclose(shifted(logits), plain(logits))
