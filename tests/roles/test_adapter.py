"""The `adapter` role, for every registered adapter plugin (a new plugin is tested by being registered):
base weights untouched by training, only the adapter trains, identity at init, exact merge, the
adapter's state dict round-trips, bad module patterns fail naming the key; optimizers built on a
wrapped model see only its trainable tensors."""
from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import OmegaConf

from reprolab.checks import ConfigError, UserError
from reprolab.config import typed
from reprolab.models.config import CausalLM
from reprolab.registry import CONF_DIR, register_schemas
from reprolab.roles.adapter import AdapterMethod
from reprolab.roles.optimizer import OptimizerMethod

ADAPTERS = {name: cls for (group, name), cls in sorted(register_schemas().items()) if group == "adapter"}
VOCAB, STEPS = 64, 4


@pytest.fixture(params=sorted(ADAPTERS), ids=str)
def adapter(request) -> AdapterMethod:
    return ADAPTERS[request.param]()


def tiny_llama() -> torch.nn.Module:
    torch.manual_seed(0)
    return CausalLM(vocab_size=VOCAB).build()  # conf/model/llama_tiny.yaml's sizes


def tokens(seed=1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(seed))


def train(adapter: AdapterMethod, model, steps=STEPS, lr=1e-2):
    """A few AdamW steps on the trainable tensors, with the adapter's regulariser and step hook."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    x = tokens(2)
    for step in range(steps):
        loss = model(x, labels=x).loss
        extra = adapter.regularizer(model)
        (loss if extra is None else loss + extra).backward()
        adapter.on_before_train_step(model)
        opt.step()
        adapter.on_train_step(model, step, steps)
        opt.zero_grad()
    return model


def logits(model, x=None):
    """In eval mode: an adapter's dropout (RoseLoRA's 0.1) would make the logits random."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(tokens() if x is None else x).logits
    model.train(was_training)
    return out


def base_name(key: str) -> str:
    """The base model's name of a wrapped model's tensor (peft moves it under ``base_layer``)."""
    return key.replace(".base_layer.", ".")


def test_every_adapter_plugin_is_an_adapter_with_a_yaml():
    assert {"lora", "dora", "adalora"} <= set(ADAPTERS)
    for name, cls in ADAPTERS.items():
        assert issubclass(cls, AdapterMethod) and cls.role == "adapter"
        yaml = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "adapter" / f"{name}.yaml"))
        # no values in the YAML: the dataclass is the one home of each default
        assert yaml == {"defaults": [f"/schema/adapter/{name}@_here_", "_self_"]}, name


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_adapter_composes_from_its_yaml(compose, name):
    cfg, _ = compose([f"adapter={name}"])
    assert typed(cfg.adapter) == ADAPTERS[name]()
    cfg, _ = compose([f"adapter={name}", "adapter.target_modules=[k_proj]", "adapter.train_base=true"])
    assert typed(cfg.adapter).target_modules == ["k_proj"] and typed(cfg.adapter).train_base


def test_wrap_trains_only_the_adapter_and_keeps_a_plain_model(adapter):
    base = tiny_llama()
    model = adapter.wrap(base)
    assert model is base and type(model).__name__ == "LlamaForCausalLM"
    state = adapter.adapter_state_dict(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and trainable <= set(state)
    assert all(".self_attn.q_proj." in k or ".self_attn.v_proj." in k for k in state), sorted(state)
    assert not any(".base_layer." in k for k in state)
    # every base tensor is still there, frozen, under its base name
    base_keys = {base_name(k) for k in model.state_dict() if k not in state}
    assert base_keys == set(tiny_llama().state_dict())
    assert not any(p.requires_grad for n, p in model.named_parameters() if n not in state)


def test_train_base_unfreezes_the_base(adapter):
    adapter.train_base = True
    model = adapter.wrap(tiny_llama())
    state = adapter.adapter_state_dict(model)
    assert all(p.requires_grad for n, p in model.named_parameters() if n not in state)


def test_wrapped_model_equals_the_base_at_init(adapter):
    base = tiny_llama()
    before = logits(base)
    after = logits(adapter.wrap(base))
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


def test_training_leaves_the_base_weights_untouched(adapter):
    model = tiny_llama()
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    before = logits(model)
    model = train(adapter, adapter.wrap(model))
    state = adapter.adapter_state_dict(model)
    base_now = {base_name(k): v for k, v in model.state_dict().items() if k not in state}
    assert base_now.keys() == snapshot.keys()
    changed = [k for k in snapshot if not torch.equal(base_now[k], snapshot[k])]
    assert not changed, changed
    assert (logits(model) - before).abs().max() > 1e-4  # the adapter did train


def test_merge_gives_the_adapted_models_logits(adapter):
    model = train(adapter, adapter.wrap(tiny_llama()))
    x = tokens(3)
    adapted = logits(model, x)
    merged = adapter.merge(model)
    assert type(merged).__name__ == "LlamaForCausalLM"
    assert set(merged.state_dict()) == set(tiny_llama().state_dict())  # no adapter tensors left
    torch.testing.assert_close(logits(merged, x), adapted, rtol=0, atol=1e-5)
    assert not torch.equal(merged.model.layers[0].self_attn.q_proj.weight,
                           tiny_llama().model.layers[0].self_attn.q_proj.weight)


def test_adapter_state_dict_round_trips_into_a_fresh_wrapped_model(adapter):
    model = train(adapter, adapter.wrap(tiny_llama()))
    saved = {k: v.clone() for k, v in adapter.adapter_state_dict(model).items()}
    fresh = adapter.wrap(tiny_llama())
    assert not torch.equal(logits(fresh), logits(model))
    adapter.load_adapter_state_dict(fresh, saved)
    assert torch.equal(logits(fresh), logits(model))


def test_loading_an_adapter_for_another_model_fails_naming_the_tensors(adapter):
    saved = adapter.adapter_state_dict(adapter.wrap(tiny_llama()))
    other = type(adapter)(target_modules=["k_proj", "v_proj"])
    with pytest.raises(UserError, match=r"missing \(\d+\).*k_proj.*unexpected \(\d+\).*q_proj.*adapter.target_modules"):
        other.load_adapter_state_dict(other.wrap(tiny_llama()), saved)
    wider = tiny_llama()
    wider.model.layers[0].self_attn.q_proj = torch.nn.Linear(128, 256, bias=False)
    wider = adapter.wrap(wider)
    with pytest.raises(UserError, match=r"shape mismatch \(\d\): model\.layers\.0\.self_attn\.q_proj"):
        adapter.load_adapter_state_dict(wider, saved)


@pytest.mark.parametrize("patterns, unmatched", [(["nope"], "nope"), (["q_proj", "vproj"], "vproj")])
def test_patterns_that_match_nothing_fail_naming_the_key(adapter, patterns, unmatched):
    adapter.target_modules = patterns
    with pytest.raises(ConfigError, match=rf"adapter\.target_modules=.*'{unmatched}'.*match no module.*"
                                          r"down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj"):
        adapter.wrap(tiny_llama())


def test_patterns_must_name_linear_layers(adapter):
    adapter.target_modules = ["self_attn"]
    with pytest.raises(ConfigError, match=r"adapter\.target_modules=.*not linear layers.*layers\.0\.self_attn"):
        adapter.wrap(tiny_llama())


@pytest.mark.parametrize("field, value", [("target_modules", []), ("alpha", 0.0), ("dropout", 1.0), ("bias", "some")])
def test_bad_values_name_the_key(adapter, field, value):
    if field not in type(adapter).__dataclass_fields__:
        pytest.skip(f"{type(adapter).__name__} has no {field} (not a peft LoRA-family adapter)")
    with pytest.raises(ConfigError, match=rf"adapter\.{field}="):
        type(adapter)(**{field: value})


def test_wrapping_twice_fails(adapter):
    model = adapter.wrap(tiny_llama())
    with pytest.raises(UserError, match="already holds an adapter"):
        adapter.wrap(model)


def test_regulariser_is_none_or_a_finite_scalar_on_the_adapter(adapter):
    model = adapter.wrap(tiny_llama())
    reg = adapter.regularizer(model)
    if reg is None:
        return
    assert reg.dim() == 0 and torch.isfinite(reg)
    reg.backward()
    state = adapter.adapter_state_dict(model)
    assert all(n in state for n, p in model.named_parameters() if p.grad is not None)


OPTIMIZERS = {name: cls for (_, name), cls in sorted(register_schemas().items())
              if isinstance(cls, type) and issubclass(cls, OptimizerMethod)}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS), ids=str)
def test_optimizer_on_a_wrapped_model_sees_only_the_trainable_tensors(adapter, optimizer):
    """Every registered optimizer plugin (AdamW, COSMOS, ...): its groups hold exactly the trainable tensors
    and a step leaves the frozen base alone. A rank option must fit the adapter's matrices (r = 8)."""
    assert {"adamw", "cosmos"} <= set(OPTIMIZERS)
    cls = OPTIMIZERS[optimizer]
    plugin = cls(rank=4) if "rank" in cls.__dataclass_fields__ else cls()
    model = adapter.wrap(tiny_llama())
    opt = plugin.build_optimizer(model)
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(seen) == len(set(seen)) and set(seen) == trainable
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    x = tokens()
    model(x, labels=x).loss.backward()
    opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


# ---- plugin-specific: AdaLoRA's rank allocation and schedule, LoRA's options -------------------------
def test_adalora_masks_singular_values_down_to_the_target_budget():
    from methods.lora import AdaLoRAAdapterConfig

    n_matrices = 2 * 2  # q_proj and v_proj of two layers
    masked = AdaLoRAAdapterConfig(init_r=12, target_r=8)
    model = train(masked, masked.wrap(tiny_llama()))
    nonzero = sum(int((p != 0).sum()) for n, p in model.named_parameters() if ".lora_E." in n)
    assert 0 < nonzero <= 8 * n_matrices

    class NoAllocation(AdaLoRAAdapterConfig):
        def on_train_step(self, model, step, max_steps):
            """Skip peft's rank allocation: the control whose singular values stay unmasked."""

    unmasked = NoAllocation(init_r=12, target_r=8)
    model = train(unmasked, unmasked.wrap(tiny_llama()))
    assert sum(int((p != 0).sum()) for n, p in model.named_parameters() if ".lora_E." in n) == 12 * n_matrices


def test_adalora_schedule_must_leave_allocation_steps():
    from methods.lora import AdaLoRAAdapterConfig

    with pytest.raises(ConfigError, match=r"adapter\.tinit=3 \+ adapter\.tfinal=2 .*adapter\.total_step=5"):
        AdaLoRAAdapterConfig(tinit=3, tfinal=2, total_step=5)
    late = AdaLoRAAdapterConfig(tinit=3, tfinal=2)
    model = late.wrap(tiny_llama())
    with pytest.raises(ConfigError, match=r"adapter\.tinit=3 \+ adapter\.tfinal=2 .*run's max steps=5"):
        late.on_train_step(model, 0, 5)
    with pytest.raises(ConfigError, match=r"adapter\.init_r=4 is below adapter\.target_r=8"):
        AdaLoRAAdapterConfig(init_r=4, target_r=8)


@pytest.mark.parametrize("field, value", [("r", 0), ("init", "pissa")])
def test_lora_bad_values_name_the_key(field, value):
    from methods.lora import DoRAAdapterConfig, LoRAAdapterConfig

    for cls in (LoRAAdapterConfig, DoRAAdapterConfig):
        with pytest.raises(ConfigError, match=rf"adapter\.{field}="):
            cls(**{field: value})


def test_dora_is_lora_with_a_magnitude_vector():
    from methods.lora import DoRAAdapterConfig, LoRAAdapterConfig

    lora, dora = LoRAAdapterConfig(), DoRAAdapterConfig()
    lora_keys = set(lora.adapter_state_dict(lora.wrap(tiny_llama())))
    dora_keys = set(dora.adapter_state_dict(dora.wrap(tiny_llama())))
    assert lora_keys < dora_keys
    assert all(".lora_magnitude_vector." in k for k in dora_keys - lora_keys)


@pytest.mark.parametrize("bias", ["none", "lora_only", "all"])
def test_trained_biases_are_part_of_the_adapter(bias):
    """GPT-2 (Conv1D layers with biases): peft's bias option decides which biases train and are saved."""
    from methods.lora import LoRAAdapterConfig

    gpt2 = CausalLM(arch="gpt2", vocab_size=VOCAB, num_layers=1).build()
    with pytest.raises(ConfigError, match=r"match no module.*c_attn, c_fc, c_proj, lm_head"):
        LoRAAdapterConfig().wrap(copy.deepcopy(gpt2))
    adapter = LoRAAdapterConfig(target_modules=["c_attn"], bias=bias)
    model = adapter.wrap(gpt2)
    biases = {k for k in adapter.adapter_state_dict(model) if k.endswith(".bias")}
    expected = {"none": set(), "lora_only": {"transformer.h.0.attn.c_attn.base_layer.bias"},
                "all": {n for n, _ in model.named_parameters() if n.endswith(".bias")}}[bias]
    assert biases == expected
    assert {n for n, p in model.named_parameters() if p.requires_grad and n.endswith(".bias")} == expected
