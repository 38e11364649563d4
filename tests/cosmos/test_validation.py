"""Bad input, for every optimizer in methods/: a clear error naming the value, or a documented behaviour."""
import pytest
import torch

from reprolab.checks import ConfigError
from tests.cosmos.factories import FACTORIES, Tiny

ALL = sorted(FACTORIES)


def _step(opt, model, x=None):
    x = torch.randn(5, 8, dtype=next(model.parameters()).dtype) if x is None else x
    opt.zero_grad()
    model(x).square().sum().backward()
    opt.step()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("lr", [0.0, -1e-3, float("nan")])
def test_lr_must_be_positive(name, lr):
    with pytest.raises(ValueError, match=r"lr=.* must be > 0"):
        FACTORIES[name](Tiny(), lr=lr)


@pytest.mark.parametrize("name", ["cosmos", "soap", "galore", "adam_mini"])
@pytest.mark.parametrize("betas", [(1.0, 0.95), (0.9, -0.1), (0.9, 1.5)])
def test_betas_must_be_in_unit_interval(name, betas):
    with pytest.raises(ValueError, match=r"betas\[\d\]=.* in \[0.0, 1.0\)"):
        FACTORIES[name](Tiny(), betas=betas)


def test_muon_momentum_and_adam_betas_checked():
    with pytest.raises(ValueError, match=r"momentum=1.0 must be in \[0, 1\)"):
        FACTORIES["muon"](Tiny(), momentum=1.0)
    with pytest.raises(ValueError, match=r"betas\[0\]=1.2"):
        FACTORIES["muon"](Tiny(), adam_betas=(1.2, 0.95))


def test_cosmos_rank_larger_than_min_dim_is_an_error():
    with pytest.raises(ValueError, match=r"rank=9 is larger than min\(m, n\)=8 .* shape \(12, 8\)"):
        FACTORIES["cosmos"](Tiny(), rank=9)


def test_galore_rank_larger_than_min_dim_is_clamped_with_a_warning():
    """Documented behaviour (as the reference): rank > min(m, n) projects at rank min(m, n)."""
    model = Tiny()
    with pytest.warns(UserWarning, match=r"rank=9 is larger than min\(m, n\) for parameters of shape \[\(12, 8\)\]"):
        opt = FACTORIES["galore"](model, rank=9)
    _step(opt, model)
    assert opt.state[model.proj.weight]["projector"].shape == (8, 8)


@pytest.mark.parametrize("name", ["cosmos", "galore"])
@pytest.mark.parametrize("rank", [0, -2, 2.5])
def test_rank_must_be_positive_int(name, rank):
    with pytest.raises(ValueError, match=r"rank=.* must be a positive integer"):
        FACTORIES[name](Tiny(), rank=rank)


@pytest.mark.parametrize("name", ALL)
def test_complex_params_rejected(name):
    model = Tiny()
    model.norm = torch.nn.Parameter(torch.ones(12, dtype=torch.complex64))
    with pytest.raises(ValueError, match="complex parameters"):
        FACTORIES[name](model)


@pytest.mark.parametrize("name", ALL)
def test_sparse_grads_rejected(name):
    model = Tiny()
    opt = FACTORIES[name](model)
    model.proj.weight.grad = torch.randn(12, 8).to_sparse()
    with pytest.raises(ValueError, match="sparse gradients"):
        opt.step()


@pytest.mark.parametrize("name", ALL)
def test_params_without_grad_are_skipped(name):
    """A frozen-this-step tensor keeps its value and gets no state; the others still move."""
    torch.manual_seed(0)
    model = Tiny()
    opt = FACTORIES[name](model)
    before = model.norm.detach().clone(), model.proj.weight.detach().clone()
    for _ in range(2):  # SOAP's first step only builds its preconditioner
        opt.zero_grad()
        model.proj(torch.randn(5, 8)).square().sum().backward()  # norm gets no grad
        assert model.norm.grad is None
        opt.step()
    assert torch.equal(model.norm, before[0]) and model.norm not in opt.state
    assert not torch.equal(model.proj.weight, before[1])


@pytest.mark.parametrize("name", ALL)
def test_grads_are_not_modified(name):
    """The official COSMOS mixes momentum into p.grad in place; none of ours touch it."""
    torch.manual_seed(0)
    model = Tiny()
    opt = FACTORIES[name](model)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 8)).square().sum().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))


@pytest.mark.parametrize("name", ALL)
def test_bf16_params_keep_fp32_state(name):
    """Documented behaviour: state is fp32; the param is updated in fp32 and rounded back to bf16."""
    torch.manual_seed(0)
    model = Tiny(torch.bfloat16)
    opt = FACTORIES[name](model, lr=0.05)
    before = model.proj.weight.detach().clone()
    for _ in range(3):
        _step(opt, model)
    assert model.proj.weight.dtype == torch.bfloat16
    assert not torch.equal(model.proj.weight, before)
    dtypes = {v.dtype for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)}
    assert dtypes == {torch.float32}


def test_cosmos_explicit_routing_must_fit():
    from methods.cosmos import COSMOS

    model = Tiny()
    with pytest.raises(ValueError, match=r"use_cosmos=True needs 2-D tensors, got shape \(12,\)"):
        COSMOS([{"params": [model.norm], "use_cosmos": True}], rank=4)
    with pytest.raises(ValueError, match=r"use_cosmos='yes' must be true, false or absent"):
        COSMOS([{"params": [model.proj.weight], "use_cosmos": "yes"}], rank=4)


def test_cosmos_bad_options():
    from methods.cosmos import COSMOS

    model = Tiny()
    for kw, msg in [({"gamma": -0.1}, "gamma=-0.1 must be >= 0"), ({"lr_ratio": 0}, "lr_ratio=0 must be > 0"),
                    ({"ns_steps": 0}, "ns_steps=0 must be a positive integer"),
                    ({"ns_dtype": "fp8"}, "ns_dtype='fp8' must be None"), ({"backend": "cuda"}, "backend='cuda'")]:
        with pytest.raises(ValueError, match=msg):
            COSMOS(model.parameters(), rank=4, **kw)


@pytest.mark.parametrize("override, key", [
    ("method.lr=-1", "method.lr=-1.0"), ("method.rank=0", "method.rank=0"), ("method.betas=[0.9,1.0]", "method.betas[1]"),
    ("method.gamma=-1", "method.gamma"), ("method.routing=size", "method.routing='size'"),
])
def test_cosmos_schema_names_the_key(compose, override, key):
    from reprolab.config import typed

    cfg, _ = compose(["method=cosmos", override])
    with pytest.raises(ConfigError, match=key.replace("[", r"\[")):
        typed(cfg.method)


def test_cosmos_rank_too_large_for_the_model_names_the_key():
    """Only the model knows the largest rank: the run fails with method.rank and the smallest matrix's
    side (the smaller of two hidden matrices, not the first one met), not a traceback."""
    from methods.cosmos.config import CosmosConfig

    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.Linear(8, 6), torch.nn.Linear(6, 16))  # sides 8, 6, 6
    with pytest.raises(ConfigError, match=r"method.rank=10 .* \(6\): set method.rank to at most 6"):
        CosmosConfig(rank=10, routing="shape").build_optimizer(model)
    assert CosmosConfig(rank=6, routing="shape").build_optimizer(model) is not None


@pytest.mark.parametrize("method, override", [("muon", "method.scale=huge"), ("soap", "method.shampoo_beta=1.0"),
                                              ("galore", "method.rank=0"), ("adam_mini", "method.betas=[1.0,0.9]")])
def test_baseline_schemas_validate(compose, method, override):
    from reprolab.config import typed

    cfg, _ = compose([f"method={method}", override])
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        typed(cfg.method)


def test_adam_mini_needs_heads_for_query_key():
    from methods.adam_mini import AdamMini

    q = torch.nn.Parameter(torch.randn(8, 8))
    with pytest.raises(ValueError, match="q_proj.weight is a query/key weight, which needs dim= and n_heads="):
        AdamMini([("layer.q_proj.weight", q)])


@pytest.mark.parametrize("name", ALL)
def test_bf16_state_stays_fp32_through_a_checkpoint(name):
    """torch's load_state_dict casts state to the param dtype; ours keeps the saved fp32 state."""
    torch.manual_seed(0)
    model = Tiny(torch.bfloat16)
    opt = FACTORIES[name](model)
    for _ in range(2):
        _step(opt, model)
    saved = opt.state_dict()
    fresh = FACTORIES[name](model)
    fresh.load_state_dict(saved)
    for p in model.parameters():
        for key, value in opt.state[p].items():
            if isinstance(value, torch.Tensor):
                assert fresh.state[p][key].dtype == torch.float32 and torch.equal(fresh.state[p][key], value), key
    _step(fresh, model)  # and it keeps stepping
