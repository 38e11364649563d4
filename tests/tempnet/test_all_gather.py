"""Cross-process negatives (spec ../shared/papers/tempnet.md §2.2, "global batch B after all-gather"): two CPU
processes in a gloo group, each with half of a batch, give every contrastive objective the loss of the whole
batch and, after the data-parallel mean of the gradients, the one-process gradients on the concatenated batch,
over two steps (CyCLIP's penalties on the whole batch, the moving averages of SogCLR / iSogCLR, iSogCLR's tau table, TempNet's prototypes included)."""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from methods.clip_loss import ClipLossConfig
from methods.contrastive import ContrastiveObjective
from methods.cyclip import CyCLIPConfig
from methods.isogclr import ISogCLRConfig
from methods.sogclr import SogCLRConfig
from methods.tempnet_clip import TempNetClipConfig
from reprolab.checks import ConfigError
from reprolab.models.assemble import attach_temperature
from reprolab.models.config import ClipMLP

B, STEPS = 8, 2
CASES = {"clip": lambda: ClipLossConfig(tau=0.1), "cyclip": lambda: CyCLIPConfig(tau=0.1), "sogclr": lambda: SogCLRConfig(tau=0.1, gamma=0.8),
         "isogclr": lambda: ISogCLRConfig(eta=0.5), "tempnet": lambda: ISogCLRConfig(rho=7.0)}


def _model(case: str):
    torch.manual_seed(0)
    model = ClipMLP(image_dim=6, text_dim=5, hidden_sizes=[8], embed_dim=4).build().double()
    if case == "tempnet":
        attach_temperature(model, TempNetClipConfig(prototypes=6, dropout=0.0))
        model.temperature.double()
    return model.train()


def _batches():
    """STEPS global batches (the same sample ids each step: the moving averages' second step reads the first)."""
    g = torch.Generator().manual_seed(1)
    return [{"image": torch.randn(B, 6, generator=g, dtype=torch.float64),
             "text": torch.randn(B, 5, generator=g, dtype=torch.float64),
             "index": torch.arange(B), "epoch": torch.tensor(step)} for step in range(STEPS)]


def _run(case: str, rank: int | None, world: int = 1) -> list[tuple[float, dict]]:
    """(loss, gradients after the mean over processes) per step, the model stepped by SGD in between."""
    model, objective = _model(case), CASES[case]()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    out = []
    for batch in _batches():
        if rank is not None:  # this process's half
            half = B // world
            batch = {k: v[rank * half:(rank + 1) * half] if v.dim() else v for k, v in batch.items()}
        opt.zero_grad()
        loss = objective.loss(model, batch)["loss"]
        loss.backward()
        grads = {}
        for name, p in model.named_parameters():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            if rank is not None:  # what DDP does: the mean over processes
                dist.all_reduce(g)
                g /= world
            grads[name] = g.clone()
        out.append((float(loss.detach()), grads))
        opt.step()
    return out


def _worker(rank: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        results = {case: _run(case, rank, 2) for case in CASES}
        try:  # unequal shards: a clear error on every process
            ContrastiveObjective.loss(ClipLossConfig(), _model("clip"), {k: v[:2 + rank] if v.dim() else v
                                                                          for k, v in _batches()[0].items()})
            results["unequal"] = None
        except ConfigError as e:
            results["unequal"] = str(e)
        torch.save(results, f"{out_file}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gather")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp / "out")), nprocs=2, join=True)
    return [torch.load(tmp / f"out.{r}") for r in (0, 1)]


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_equal_one_process_on_the_concatenated_batch(two_processes, case):
    single = _run(case, None)
    for rank_result in two_processes:
        for (loss, grads), (ref_loss, ref_grads) in zip(rank_result[case], single):
            assert loss == pytest.approx(ref_loss, rel=1e-12, abs=1e-12)
            assert grads.keys() == ref_grads.keys()
            for name in grads:
                torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-10, atol=1e-12, msg=name)
    assert any(g.abs().sum() > 0 for g in single[-1][1].values())


def test_a_gradient_without_the_gathers_backward_sum_would_differ(two_processes):
    """The test can fail: the encoders' gradient of one process's half alone (no negatives from the other
    process) differs from the global batch's."""
    model, objective = _model("clip"), CASES["clip"]()
    batch = {k: v[:B // 2] if v.dim() else v for k, v in _batches()[0].items()}
    objective.loss(model, batch)["loss"].backward()
    name, ref = next(iter(_run("clip", None)[0][1].items()))
    assert not torch.allclose(dict(model.named_parameters())[name].grad, ref)


def test_unequal_shards_fail_naming_the_sizes(two_processes):
    for rank_result in two_processes:
        assert rank_result["unequal"] is not None and "[2, 3] pairs" in rank_result["unequal"]
