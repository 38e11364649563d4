"""Property 12 (spec ../shared/papers/dft.md §6): under DDP every process ends a step with the same log-u
table: the union of the processes' updates, and for a prompt updated by both the mean of the log values.
Two CPU processes in a gloo group."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from methods.dft import DFTConfig

# rank -> (prompt ids, the log u each computed); prompt 2 is updated by both
UPDATES = {0: ([0, 1, 2], [0.5, -1.0, 2.0]), 1: ([3, 4, 2], [1.5, 0.25, -4.0])}


def _worker(rank: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        from methods.dft.estimator import all_gather_updates

        cfg = DFTConfig()
        ids, values = UPDATES[rank]
        cfg.table.set(*all_gather_updates(torch.tensor(ids), torch.tensor(values)))
        # and through a whole step: each rank's loss on its own prompts, tables equal afterwards
        g = torch.Generator().manual_seed(rank)
        lp_neg = -5 * torch.rand(2, 2, generator=g)
        cfg.step(-torch.rand(2, generator=g), torch.ones(2), lp_neg, torch.ones(2, 2), lp_neg - 0.3,
                 torch.tensor([10 + rank, 20 + rank]))
        torch.save(cfg.state_dict(), f"{out_file}.{rank}")
    finally:
        dist.destroy_process_group()


def test_two_processes_end_with_the_same_merged_table(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path / "state")), nprocs=2, join=True)
    s0, s1 = (torch.load(tmp_path / f"state.{r}") for r in (0, 1))
    torch.testing.assert_close(s0["log_u"], s1["log_u"], rtol=0, atol=0)
    torch.testing.assert_close(s0["u_mask"], s1["u_mask"], rtol=0, atol=0)
    log_u = s0["log_u"]
    assert log_u[[0, 1, 3, 4]].tolist() == [0.5, -1.0, 1.5, 0.25]
    assert log_u[2].item() == (2.0 - 4.0) / 2  # both updated it: the mean of the log values
    assert s0["u_mask"].nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 10, 11, 20, 21]
    assert log_u[[10, 20]].ne(0).all() and log_u[[11, 21]].ne(0).all()  # each rank's step reached the other
