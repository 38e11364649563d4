"""COSMOS and Muon run one batched Newton-Schulz per group of same-shape matrices: the result must
be exactly what each matrix gets from an optimizer of its own (the batch is an implementation
detail, not a coupling), and batches are split by shape and by size."""
from __future__ import annotations

import pytest
import torch

from methods.cosmos import COSMOS
from methods.muon import Muon
from methods.optim import same_shape_batches

SHAPES = [(12, 8), (12, 8), (8, 12), (12, 8), (10, 6), (8, 12)]  # repeated shapes, in mixed order

MAKE = {
    "cosmos": lambda params: COSMOS(params, rank=3, lr=0.01, ns_dtype="float32", backend="torch"),
    "cosmos_parity": lambda params: COSMOS(params, rank=3, lr=0.01, ns_dtype="float32", backend="torch", parity=True),
    "muon": lambda params: Muon(params, ns_dtype="float32", backend="torch"),
    "muon_plain": lambda params: Muon(params, ns_dtype="float32", backend="torch", nesterov=False, weight_decay=0.1),
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


def test_same_shape_batches_split_by_shape_then_size():
    items = [torch.zeros(*s) for s in SHAPES]
    batches = list(same_shape_batches(items, lambda t: t.shape))
    assert [[tuple(t.shape) for t in b] for b in batches] == [[(12, 8)] * 3, [(8, 12)] * 2, [(10, 6)]]
    assert [b[0] is items[0] and b[1] is items[1] and b[2] is items[3] for b in batches[:1]] == [True]
    small = list(same_shape_batches(items, lambda t: t.shape, limit=2 * 96))  # two 12 x 8 matrices per batch
    assert [len(b) for b in small] == [2, 1, 2, 1]
    assert [len(b) for b in same_shape_batches(items, lambda t: t.shape, limit=1)] == [1] * 6  # never empty
