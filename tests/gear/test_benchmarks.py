"""The GEAR benchmarks' code paths on CPU with tiny sizes (numbers are not checked here)."""
from __future__ import annotations

import torch


def test_gpu_benchmark_decode_path_runs_on_cpu():
    from benchmarks.gear_gpu import decode

    rows = list(decode(torch.device("cpu"), layers=1, hidden=64, heads=2, inter=128, vocab=64, batches=(2, 1), prompt=70,
                       new=5, dtype=torch.float32))
    caches = ["fp16", "KIVI-2", "GEAR-L", "GEAR"]
    assert [(r["batch"], r["cache"]) for r in rows] == [(b, c) for b in (2, 1) for c in caches]  # batch-major
    assert all(r["tokens_per_s"] > 0 and r["decode_tokens_per_s"] > 0 and r["prefill_s"] > 0 for r in rows)
    assert [r["batch"] for r in rows if "profile" in r] == [1] * 4  # one profiled step per cache at the last batch
    for r in rows:  # fp32 model: its DynamicCache holds twice the fp16 bytes; every compressed cache holds less than fp16
        assert r["kv_fraction"] == 2.0 if r["cache"] == "fp16" else r["kv_fraction"] < 2.0, r


def test_memory_benchmark_formula():
    from benchmarks.gear_memory import formula

    assert abs(formula(2, 64, 0.02, 4, 1000) * 16 - 4.0236) < 1e-3  # the spec's 4.02 bits per entry (§2.7)


def test_step_counter_counts_new_storages_only_and_their_peak():
    from benchmarks.gear_decode import StepCounter

    x = torch.zeros(256)
    with StepCounter() as c:
        y = x + 1  # new: 1 KiB
        y.add_(1)  # in place: nothing new
        v = y[10:]  # a view: nothing new
        del y, v
        z = x * 2  # new: the first one is gone by now
    assert c.ops == 4 and c.bytes == 2 * 1024 and c.peak == 1024 and z.numel() == 256


def test_compression_benchmark_compares_stored_tensors_bit_for_bit():
    from benchmarks.gear_compress import STORED, compare

    a = {n: torch.arange(4.0) for n in STORED} | {"recon": torch.ones(3)}
    b = {**a, "scale": torch.arange(4.0) + 1e-3, "recon": torch.ones(3) * 1.5}
    r = compare([a, a], [a, b])
    assert all(r["key"]["identical"].values()) and r["key"]["recon_max_abs_diff"] == 0
    assert [n for n, ok in r["value"]["identical"].items() if not ok] == ["scale"] and r["value"]["recon_max_abs_diff"] == 0.5


def test_budget_batch_is_the_largest_batch_that_fits():
    """weights + B x (KV per token x (prompt + new) + activations per sequence) <= budget, from a probe."""
    from benchmarks.gear_gpu import PROBE_BATCH, PROBE_STEPS, budget_batch

    weights, kv_token, act, prompt, new = 10 * 2**30, 1000, 5000, 1000, 500
    kv = PROBE_BATCH * (prompt + PROBE_STEPS) * kv_token
    B, sizes = budget_batch(lambda b, s: (weights + kv + PROBE_BATCH * act, kv), 20 * 2**30, weights, prompt, new)
    assert sizes == {"kv_bytes_per_token": kv_token, "act_bytes_per_seq": act}
    per_seq = kv_token * (prompt + new) + act
    assert weights + B * per_seq <= 20 * 2**30 < weights + (B + 1) * per_seq
