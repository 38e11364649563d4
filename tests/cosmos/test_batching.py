"""COSMOS, Muon and SOAP step same-shape tensors as one batch (COSMOS and SOAP with their state
packed): the result must be exactly what each tensor gets from an optimizer of its own (the batch
is an implementation detail, not a coupling), and batches are split by shape, step count and size."""
from __future__ import annotations

import pytest
import torch

from methods.cosmos import COSMOS
from methods.muon import Muon
from methods.soap import SOAP
from methods.optim import packed_state, same_shape_batches

SHAPES = [(12, 8), (12, 8), (8, 12), (12, 8), (10, 6), (8, 12)]  # repeated shapes, in mixed order

MAKE = {
    "cosmos": lambda params: COSMOS(params, rank=3, lr=0.01, ns_dtype="float32", backend="torch"),
    "cosmos_parity": lambda params: COSMOS(params, rank=3, lr=0.01, ns_dtype="float32", backend="torch", parity=True),
    "muon": lambda params: Muon(params, ns_dtype="float32", backend="torch"),
    "muon_plain": lambda params: Muon(params, ns_dtype="float32", backend="torch", nesterov=False, weight_decay=0.1),
    "soap": lambda params: SOAP(params, precondition_frequency=2),  # refreshes (sort + QR) every other step
    "soap_one_side": lambda params: SOAP(params, precondition_frequency=2, max_precond_dim=10, normalize_grads=True),
}


@pytest.mark.parametrize("name", list(MAKE))
def test_batched_step_equals_one_optimizer_per_matrix(name):
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(*s, generator=g, dtype=torch.float64) for s in SHAPES]
    grads = [[torch.randn(*s, generator=g, dtype=torch.float64) for s in SHAPES] for _ in range(3)]
    together = [torch.nn.Parameter(w.clone()) for w in init]
    alone = [torch.nn.Parameter(w.clone()) for w in init]
    opt = MAKE[name](together)
    opts = [MAKE[name]([p]) for p in alone]
    for step_grads in grads:
        for p, q, gr in zip(together, alone, step_grads):
            p.grad, q.grad = gr.clone(), gr.clone()
        opt.step()
        for o in opts:
            o.step()
    for p, q, w in zip(together, alone, init):
        assert not torch.equal(p, w)  # it moved
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


def _run(make, params, grads, skip=()):
    """Steps ``make(params)`` through ``grads``; (step, i) in ``skip``: parameter i has no grad then."""
    opt = make(params)
    for t, step_grads in enumerate(grads):
        for i, (p, g) in enumerate(zip(params, step_grads)):
            p.grad = None if (t, i) in skip else g.clone()
        opt.step()
    return opt


@pytest.mark.parametrize("name", ["cosmos", "muon", "soap"])
def test_a_skipped_gradient_splits_the_batch_by_step_count(name):
    """A parameter without a grad at one step falls one step behind its same-shape peers (its own
    bias corrections, its own first step): it must still get what it would get alone."""
    g = torch.Generator().manual_seed(1)
    init = [torch.randn(12, 8, generator=g, dtype=torch.float64) for _ in range(3)]
    grads = [[torch.randn(12, 8, generator=g, dtype=torch.float64) for _ in range(3)] for _ in range(4)]
    skip = {(0, 1), (2, 2)}  # parameter 1 misses step 0 (so its first step is the others' second)
    together = [torch.nn.Parameter(w.clone()) for w in init]
    _run(MAKE[name], together, grads, skip)
    for i, w in enumerate(init):
        alone = [torch.nn.Parameter(w.clone())]
        _run(MAKE[name], alone, [[gs[i]] for gs in grads], {(t, 0) for t, j in skip if j == i})
        torch.testing.assert_close(together[i], alone[0], rtol=1e-12, atol=1e-12)


def test_soap_batches_vectors_and_flattened_tensors():
    """SOAP's 1-D tensors (rows with a right factor under precondition_1d) and >2-D tensors
    (flattened to (size(0), -1)) batch too, each as alone. The vectors are short: a vector's factor
    g^T g has rank 1 per step, and until it has full rank SOAP's refresh orders the null-space
    directions by rounding noise (any two runs that round differently, e.g. two eigh calls on
    differently aligned memory, then pick different bases: SOAP's own arbitrariness, not batching's)."""
    g = torch.Generator().manual_seed(3)
    shapes = [(3,), (3,), (4, 3, 2), (4, 6), (4, 3, 2)]  # (4, 6) and (4, 3, 2) share a view, not a shape
    init = [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]
    grads = [[torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes] for _ in range(5)]
    make = lambda params: SOAP(params, precondition_frequency=2, precondition_1d=True)  # noqa: E731
    together = [torch.nn.Parameter(w.clone()) for w in init]
    _run(make, together, grads)
    for i, w in enumerate(init):
        alone = [torch.nn.Parameter(w.clone())]
        _run(make, alone, [[gs[i]] for gs in grads])
        torch.testing.assert_close(together[i], alone[0], rtol=1e-12, atol=1e-12)


def test_packed_state_resumes_exactly_and_saves_once(tmp_path):
    """COSMOS keeps a batch's state packed (each parameter's entry a view of one tensor). A
    checkpoint holds it once (not k times), and a resumed run (separate tensors after loading,
    packed again at its first step) continues exactly."""
    g = torch.Generator().manual_seed(2)
    init = [torch.randn(12, 8, generator=g, dtype=torch.float64) for _ in range(4)]
    grads = [[torch.randn(12, 8, generator=g, dtype=torch.float64) for _ in range(4)] for _ in range(4)]
    make = MAKE["cosmos"]
    straight = [torch.nn.Parameter(w.clone()) for w in init]
    _run(make, straight, grads)

    first = [torch.nn.Parameter(w.clone()) for w in init]
    opt = _run(make, first, grads[:2])
    M0 = opt.state[first[0]]["exp_avg"]
    assert all(opt.state[p]["exp_avg"].untyped_storage().data_ptr() == M0.untyped_storage().data_ptr() for p in first)
    path = tmp_path / "opt.pt"
    torch.save(opt.state_dict(), path)
    state_bytes = sum(v.numel() * v.element_size() for st in opt.state.values() for v in st.values()
                      if isinstance(v, torch.Tensor))
    assert path.stat().st_size < 1.2 * state_bytes + 20_000  # one copy of the state, plus pickle overhead

    resumed = [torch.nn.Parameter(p.detach().clone()) for p in first]
    opt2 = make(resumed)
    loaded = torch.load(path)
    for st in loaded["state"].values():  # as if loaded onto another device: separate tensors
        for key, value in st.items():
            if isinstance(value, torch.Tensor) and value.dim() == 2:
                st[key] = value.clone()
    opt2.load_state_dict(loaded)
    for t, step_grads in enumerate(grads[2:]):
        for p, gr in zip(resumed, step_grads):
            p.grad = gr.clone()
        opt2.step()
    for p, q in zip(resumed, straight):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


def test_packed_state_views_consecutive_slices_and_stacks_anything_else():
    base = torch.arange(24.0).view(3, 2, 4)
    states = [{"m": t} for t in base]  # slices of one tensor, in order: viewed, no copy
    packed = packed_state(states, "m")
    assert packed.data_ptr() == base.data_ptr() and torch.equal(packed, base)
    packed.add_(1)
    assert torch.equal(states[2]["m"], base[2]) and states[2]["m"][0, 0] == 17
    shuffled = [{"m": base[1]}, {"m": base[0]}]  # out of order: stacked, and the states re-pointed
    packed = packed_state(shuffled, "m")
    assert torch.equal(packed, torch.stack([base[1], base[0]]))
    assert shuffled[0]["m"].data_ptr() == packed.data_ptr() and packed.data_ptr() != base.data_ptr()
    lone = [{"m": base[2]}]  # a single contiguous tensor: viewed
    assert packed_state(lone, "m").data_ptr() == base[2].data_ptr()
    strided = [{"m": base[0].mT}]  # a single non-contiguous one: stacked (contiguous), the state re-pointed
    packed = packed_state(strided, "m")
    assert packed.is_contiguous() and torch.equal(packed[0], base[0].mT)
    assert strided[0]["m"].data_ptr() == packed.data_ptr()
    tail = [{"m": t} for t in base[1:]]  # consecutive slices that start inside the storage: viewed
    assert packed_state(tail, "m").data_ptr() == base[1].data_ptr()
    past_end = [{"m": base[2]}, {"m": torch.zeros(2, 4)}]  # would reach beyond base's storage: stacked
    assert torch.equal(packed_state(past_end, "m")[1], torch.zeros(2, 4))
    assert past_end[0]["m"].data_ptr() != base[2].data_ptr()
    memory = bytearray(64)  # two storages that sit side by side in memory: not one batch to view
    adjacent = [{"m": torch.frombuffer(memory, dtype=torch.float32, count=8, offset=32 * i).view(2, 4)} for i in range(2)]
    assert adjacent[1]["m"].data_ptr() == adjacent[0]["m"].data_ptr() + 32
    assert packed_state(adjacent, "m").shape == (2, 2, 4)  # stacked


def test_same_shape_batches_split_by_shape_then_size():
    items = [torch.zeros(*s) for s in SHAPES]
    batches = list(same_shape_batches(items, lambda t: t.shape))
    assert [[tuple(t.shape) for t in b] for b in batches] == [[(12, 8)] * 3, [(8, 12)] * 2, [(10, 6)]]
    assert [b[0] is items[0] and b[1] is items[1] and b[2] is items[3] for b in batches[:1]] == [True]
    small = list(same_shape_batches(items, lambda t: t.shape, limit=2 * 96))  # two 12 x 8 matrices per batch
    assert [len(b) for b in small] == [2, 1, 2, 1]
    assert [len(b) for b in same_shape_batches(items, lambda t: t.shape, limit=1)] == [1] * 6  # never empty


def test_adamw_branch_steps_a_list_like_torch_adamw():
    """The hybrids' AdamW branch steps all its tensors with foreach ops; a tensor that skipped a step
    keeps its own step count (its own bias corrections), as in torch.optim.AdamW."""
    g = torch.Generator().manual_seed(4)
    shapes = [(7,), (3, 5), (7,)]
    init = [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]
    grads = [[torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes] for _ in range(4)]
    skip = {(0, 2), (2, 0)}
    hp = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    ours = [torch.nn.Parameter(w.clone()) for w in init]
    _run(lambda ps: COSMOS([{"params": ps, "use_cosmos": False}], **hp), ours, grads, skip)
    ref = [torch.nn.Parameter(w.clone()) for w in init]
    _run(lambda ps: torch.optim.AdamW(ps, foreach=False, **hp), ref, grads, skip)
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p, q, rtol=1e-13, atol=1e-13)


def test_one_step_dispatches_a_bounded_number_of_ops():
    """The point of batching on a GPU is fewer launches: on a 12-layer LLaMA-structured model (84
    matrices, 3 shapes) a step dispatched 12,276 ops (COSMOS), 5,808 (Muon), 3,163 (SOAP) when each
    matrix went alone (commit 7f03c4f; benchmarks/results/optimizer_ops.md). Bounds with headroom
    over today's 1,121 / 746 / 774 (2fad5b6) catch a change that falls back to per-matrix work."""
    from benchmarks.optimizer_ops import count

    ops = count()
    assert ops["COSMOS"] < 2000 and ops["Muon"] < 1300 and ops["SOAP"] < 1400, ops
