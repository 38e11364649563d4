"""RoseLoRA's properties (../shared/papers/roselora.md §6): schedule, importance EMA against autograd,
per-row / per-column pruning counts, the product-sparsity bound, the clamp, regrowth, LoRA at density 1,
merge / unmerge, the importance state across a resume, bad values. The role contract (base untouched,
merge == forward, state-dict round trip, bad patterns) is tests/roles/test_adapter.py's."""
from __future__ import annotations

import math

import pytest
import torch

from methods.lora import LoRAAdapterConfig
from methods.roselora import RoseLoRAAdapterConfig
from methods.roselora.adapter import delta_density, lora_layers, pruner_of
from methods.roselora.pruning import keep_mask, keep_rate
from reprolab.checks import ConfigError
from reprolab.models.config import CausalLM

VOCAB = 64


def tiny_llama(seed=0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return CausalLM(vocab_size=VOCAB).build()  # d 128, 2 layers: q_proj, v_proj are 128 x 128


def batch(seed=1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(seed))


def step(adapter, model, opt, i, x=None):
    """One optimizer step with the hooks in the lm runner's order."""
    x = batch(10 + i) if x is None else x
    model(x, labels=x).loss.backward()
    adapter.on_before_train_step(model)
    opt.step()
    adapter.on_train_step(model, i, 100)
    opt.zero_grad()


def adam(model, lr=1e-2):
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)


def ab(model):
    return [(lay.lora_A["default"].weight, lay.lora_B["default"].weight) for lay in lora_layers(model).values()]


# ---- §2.4 schedule --------------------------------------------------------------------------------
def test_schedule_reproduces_the_official_values():
    """rate(it) with ρ = 0.05, full_iter 3, burnin_iter 20 (§2.4, the 17 values run from the official code)."""
    table = {4: 0.842, 5: 0.703, 6: 0.581, 7: 0.475, 8: 0.384, 9: 0.307, 10: 0.243, 11: 0.191, 12: 0.149,
             13: 0.116, 14: 0.092, 15: 0.074, 16: 0.062, 17: 0.055, 18: 0.052, 19: 0.0502}
    for it in range(4):
        assert keep_rate(it, 0.05, 3, 20) == 1.0  # it = 3 gives exactly 1: pruning starts at it = 4
    for it, want in table.items():
        assert round(keep_rate(it, 0.05, 3, 20), 3 if it < 19 else 4) == want, it
    assert keep_rate(20, 0.05, 3, 20) == keep_rate(500, 0.05, 3, 20) == 0.05
    cfg = RoseLoRAAdapterConfig(density=0.2, t_init=10, t_final=90)  # AdaLoRA's form: t_final = T - t_f
    t = torch.arange(10, 90, dtype=torch.float64)
    closed = 0.2 + 0.8 * (1 - (t - 10) / 80) ** 3
    assert torch.allclose(torch.tensor([cfg.keep_rate(int(s)) for s in t], dtype=torch.float64), closed)


# ---- §2.3 importance --------------------------------------------------------------------------------
def test_importance_ema_against_autograd_with_pre_step_weights():
    """Ī₁ = |g₁ ⊙ w₁| exactly (B = 0 at init: B's importance is zero, and so is A's, whose gradient passes
    through B); Ī₂ = 0.8 Ī₁ + 0.2 |g₂ ⊙ w₂|
    with w₂ the weights before the second step; gradients computed independently by autograd."""
    cfg = RoseLoRAAdapterConfig(dropout=0.0)
    model = cfg.wrap(tiny_llama())
    opt = adam(model)
    params = [p for pair in ab(model) for p in pair]

    def sensitivity(x):
        grads = torch.autograd.grad(model(x, labels=x).loss, params)
        return [(g * p.detach()).abs() for g, p in zip(grads, params)]

    first = sensitivity(batch(10))
    step(cfg, model, opt, 0, batch(10))
    g = pruner_of(model).groups[0]
    stored = [t for pair in zip(g.imp_a.unbind(0), g.imp_b.unbind(0)) for t in pair]
    for s, imp in zip(first, stored):
        torch.testing.assert_close(imp, s, rtol=1e-5, atol=0)
    assert not g.imp_b.any() and not g.imp_a.any()  # B = 0: no sensitivity yet
    second = sensitivity(batch(11))  # at the weights after step 1 = before step 2
    step(cfg, model, opt, 1, batch(11))
    stored = [t for pair in zip(g.imp_a.unbind(0), g.imp_b.unbind(0)) for t in pair]
    for s1, s2, imp in zip(first, second, stored):
        torch.testing.assert_close(imp, 0.8 * s1 + 0.2 * s2, rtol=1e-5, atol=1e-12)
    assert g.imp_a.any() and g.imp_b.any()


def test_uncertainty_multiplies_the_score():
    cfg = RoseLoRAAdapterConfig(dropout=0.0, use_uncertainty=True, beta2=0.5)
    model = cfg.wrap(tiny_llama())
    opt = adam(model)
    for i in range(3):
        step(cfg, model, opt, i)
    pr = pruner_of(model)
    g = pr.groups[0]
    assert g.unc_a is not None and bool((g.unc_a > 0).any())
    torch.testing.assert_close(pr.scores(g)[0], g.imp_a * g.unc_a)
    assert pr.state_numel() == 2 * sum(a.numel() + b.numel() for a, b in ab(model))


# ---- §2.5 pruning -----------------------------------------------------------------------------------
@pytest.mark.parametrize("selection, rate, kept", [("kthvalue", 0.05, 128 - math.floor(128 * 0.95) + 1),
                                                   ("topk", 0.05, math.ceil(0.05 * 128)),
                                                   ("kthvalue", 0.2, 128 - math.floor(128 * 0.8) + 1)])
def test_pruning_keeps_the_top_importance_entries_per_row_and_column(selection, rate, kept):
    """Every row of A and every column of B keeps exactly `kept` entries (8 of 128 at ρ = 0.05 with the
    official kthvalue rule), and they are its highest-importance ones."""
    cfg = RoseLoRAAdapterConfig(selection=selection, clamp=None)
    model = cfg.wrap(tiny_llama())
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for a, b in ab(model):
            a.copy_(torch.randn(a.shape, generator=gen))
            b.copy_(torch.randn(b.shape, generator=gen))
    pr = pruner_of(model)
    for g in pr.groups:  # distinct random scores
        g.imp_a.copy_(torch.rand(g.imp_a.shape, generator=gen))
        g.imp_b.copy_(torch.rand(g.imp_b.shape, generator=gen))
    pr.prune(rate)
    g = pr.groups[0]
    for (a, b), ia, ib in zip(ab(model), g.imp_a, g.imp_b):
        assert ((a != 0).sum(1) == kept).all() and ((b != 0).sum(0) == kept).all()
        top_a = ia.topk(kept, dim=1).indices
        assert torch.equal((a != 0), torch.zeros_like(a, dtype=torch.bool).scatter_(1, top_a, True))
        top_b = ib.topk(kept, dim=0).indices
        assert torch.equal((b != 0), torch.zeros_like(b, dtype=torch.bool).scatter_(0, top_b, True))


def test_kthvalue_with_k_zero_keeps_everything():
    score = torch.rand(4, 16)
    assert keep_mask(score, 0.99, -1, "kthvalue") is None  # ⌊16·0.01⌋ = 0: the official code would crash
    assert keep_mask(score, 1.0, -1, "topk") is None


def test_density_of_the_product_is_below_the_bound_after_training():
    """§2.1: density(BA) <= Σ_i ρ_B,i ρ_A,i <= r ρ², on trained matrices; LoRA's update is dense."""
    rho, r = 0.05, 8
    cfg = RoseLoRAAdapterConfig(density=rho, t_init=0, t_final=3, clamp=None)
    model = cfg.wrap(tiny_llama())
    opt = adam(model)
    for i in range(5):
        step(cfg, model, opt, i)
    d = delta_density(model)
    kept = (128 - math.floor(128 * (1 - rho)) + 1) / 128  # 8/128 per row and column
    assert 0 < d["density"] <= d["bound"] <= r * kept ** 2 + 1e-12
    assert d["param_density"] == pytest.approx(kept)
    lora = LoRAAdapterConfig(alpha=32)
    dense = lora.wrap(tiny_llama())
    opt = adam(dense)
    for i in range(2):
        step(lora, dense, opt, i)
    assert delta_density(dense)["density"] == 1.0


def test_clamp_bounds_the_adapter_after_a_pruned_step():
    cfg = RoseLoRAAdapterConfig(t_init=0, t_final=2)
    model = cfg.wrap(tiny_llama())
    opt = adam(model, lr=0.1)
    for i in range(3):
        step(cfg, model, opt, i)
    top = max(float(torch.maximum(a.detach().abs().max(), b.detach().abs().max())) for a, b in ab(model))
    assert top == pytest.approx(3e-3)  # reached, not exceeded (A's init range 1/√128 ≫ 3e-3)
    free = RoseLoRAAdapterConfig(t_init=0, t_final=2, clamp=None)
    model = free.wrap(tiny_llama())
    opt = adam(model, lr=0.1)
    for i in range(3):
        step(free, model, opt, i)
    assert max(a.abs().max() for a, _ in ab(model)) > 3e-3


def test_pruned_entries_regrow_and_are_pruned_again_only_if_unimportant():
    """The mask is not persistent: Adam moves a pruned entry at the next step; the next prune zeroes it
    again only when its EMA importance is still below its row's threshold."""
    cfg = RoseLoRAAdapterConfig(density=0.2, t_init=0, t_final=1, clamp=None, dropout=0.0)
    model = cfg.wrap(tiny_llama())
    opt = adam(model)
    for i in range(3):
        step(cfg, model, opt, i)
    a = ab(model)[0][0]
    pruned = a == 0
    x = batch(50)
    model(x, labels=x).loss.backward()
    cfg.on_before_train_step(model)
    opt.step()
    assert (a[pruned] != 0).any()  # regrown by the optimizer step
    cfg.on_train_step(model, 3, 100)
    opt.zero_grad()
    imp = pruner_of(model).groups[0].imp_a[0]
    survived = a != 0
    threshold = imp.kthvalue(int(128 * 0.8), dim=1, keepdim=True).values
    assert torch.equal(survived | (imp < threshold), torch.ones_like(survived))  # kept iff score >= threshold
    assert ((imp >= threshold) & pruned).any() or (survived == ~pruned).all()


# ---- reductions ---------------------------------------------------------------------------------------
def test_density_one_without_clamp_is_lora_step_by_step():
    """§6.1: with nothing pruned (ρ = 1, no clamp) RoseLoRA's weights equal LoRA's at every step."""
    rose = RoseLoRAAdapterConfig(density=1.0, t_init=0, t_final=0, clamp=None, dropout=0.0, alpha=32)
    lora = LoRAAdapterConfig(alpha=32)
    m1, m2 = rose.wrap(tiny_llama()), lora.wrap(tiny_llama())
    o1, o2 = adam(m1), adam(m2)
    for i in range(4):
        step(rose, m1, o1, i)
        step(lora, m2, o2, i)
        for (a1, b1), (a2, b2) in zip(ab(m1), ab(m2)):
            assert torch.equal(a1, a2) and torch.equal(b1, b2)


def test_only_adapter_parameters_receive_gradients():
    cfg = RoseLoRAAdapterConfig()
    model = cfg.wrap(tiny_llama())
    x = batch()
    model(x, labels=x).loss.backward()
    got = {n for n, p in model.named_parameters() if p.grad is not None}
    assert got == {n for n, p in model.named_parameters() if p.requires_grad}
    assert got and all(".lora_A." in n or ".lora_B." in n for n in got)


def test_trainable_parameters_follow_the_memory_formula():
    """§6.10: Σ over adapted matrices of r (d1 + d2); LLaMA-2-7B q, v at r = 8: 4,194,304 (built on the meta
    device, no weights)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg7b = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                        vocab_size=32000)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg7b)
    model = RoseLoRAAdapterConfig().wrap(model)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 64 * 8 * (4096 + 4096) == 4_194_304
    assert pruner_of(model).state_numel() == 4_194_304 and len(pruner_of(model).groups) == 1  # one batch of 64


def test_merge_then_unmerge_restores_the_base_weights():
    """peft's merge adds s B A in place and unmerge subtracts it: bit for bit where ΔW = 0 (most entries of
    a sparse update), to within float rounding elsewhere; the merged layer computes the adapted forward."""
    cfg = RoseLoRAAdapterConfig(t_init=0, t_final=2, clamp=None, dropout=0.0)
    model = cfg.wrap(tiny_llama())
    opt = adam(model)
    for i in range(3):
        step(cfg, model, opt, i)
    layer = next(iter(lora_layers(model).values()))
    w0 = layer.base_layer.weight.detach().clone()
    x = torch.randn(3, 128)
    with torch.no_grad():
        adapted = layer(x)
        layer.merge()
        torch.testing.assert_close(layer(x), adapted, rtol=0, atol=1e-6)
        delta = layer.get_delta_weight("default")
        layer.unmerge()
    w = layer.base_layer.weight
    assert torch.equal(w[delta == 0], w0[delta == 0]) and (delta == 0).float().mean() > 0.5
    torch.testing.assert_close(w, w0, rtol=0, atol=1e-7)


def test_importance_state_survives_a_resume():
    """Training 6 steps straight equals 3 steps, saving adapter tensors + train state + optimizer, a fresh
    wrapped model loading them, 3 more steps (the lm runner checkpoints `train_state_dict`)."""
    cfg = RoseLoRAAdapterConfig(t_init=1, t_final=5, dropout=0.0)
    straight = cfg.wrap(tiny_llama())
    opt = adam(straight)
    for i in range(6):
        step(cfg, straight, opt, i)
    first = cfg.wrap(tiny_llama())
    opt = adam(first)
    for i in range(3):
        step(cfg, first, opt, i)
    saved = ({k: v.clone() for k, v in cfg.adapter_state_dict(first).items()}, cfg.train_state_dict(first),
             opt.state_dict())
    resumed = cfg.wrap(tiny_llama())
    cfg.load_adapter_state_dict(resumed, saved[0])
    cfg.load_train_state_dict(resumed, saved[1])
    opt = adam(resumed)
    opt.load_state_dict(saved[2])
    for i in range(3, 6):
        step(cfg, resumed, opt, i)
    for (a1, b1), (a2, b2) in zip(ab(straight), ab(resumed)):
        assert torch.equal(a1, a2) and torch.equal(b1, b2)
    fresh = cfg.wrap(tiny_llama())  # without the train state the EMA restarts: a different result
    cfg.load_adapter_state_dict(fresh, saved[0])
    assert pruner_of(fresh).updates == 0


# ---- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("field, value, message", [
    ("r", 0, r"adapter\.r=0"), ("r", -2, r"adapter\.r=-2"),
    ("density", 0.0, r"adapter\.density=0\.0 .*\(0\.0, 1\.0\]"), ("density", 1.5, r"adapter\.density=1\.5"),
    ("t_final", 2, r"adapter\.t_final=2 is before adapter\.t_init=3"), ("selection", "random", r"adapter\.selection"),
    ("clamp", 0.0, r"adapter\.clamp=0\.0"), ("beta1", 1.0, r"adapter\.beta1=1\.0")])
def test_bad_values_name_the_key_and_the_fix(field, value, message):
    with pytest.raises(ConfigError, match=message):
        RoseLoRAAdapterConfig(**{field: value})


def test_resuming_with_other_layers_fails():
    from reprolab.checks import UserError

    cfg = RoseLoRAAdapterConfig()
    state = cfg.train_state_dict(cfg.wrap(tiny_llama()))
    other = RoseLoRAAdapterConfig(target_modules=["k_proj"])
    with pytest.raises(UserError, match="other adapted layers"):
        other.load_train_state_dict(other.wrap(tiny_llama()), state)
