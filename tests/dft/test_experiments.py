"""DFT end to end through `python run.py` (slow): the real-data smoke on UltraFeedback (issue 16: chat
formatting, masking, the negatives cache), the toy's base model + DFT from it."""
from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import needs_shared_data

QUIET = ["logger=csv", "trainer.enable_progress_bar=false"]


@pytest.mark.slow
@needs_shared_data
def test_ultrafeedback_smoke_trains_on_chat_formatted_text_and_reuses_its_negatives(run_job, tmp_path, monkeypatch):
    from methods.dft import negatives

    cache = tmp_path / "logs" / "cache" / "dft_negatives"
    first, job = run_job(["experiment=dft_uf_smoke", *QUIET])
    files = list(cache.glob("negatives-*.pt"))
    assert len(files) == 1
    negs = torch.load(files[0], weights_only=False)
    assert negs["manifest"]["tokenizer"] == "byte:256" and negs["ref_logps"].shape == (16, 4)
    assert negs["manifest"]["generation"]["tokens_per_s"] > 0
    stamp = files[0].stat().st_mtime_ns
    assert all(k in first for k in ("table/val_margin", "table/val_exact_match", "train/loss"))
    monkeypatch.setattr(negatives, "make", lambda *a: pytest.fail("the negatives were generated again"))
    second, job2 = run_job(["experiment=dft_uf_smoke", "objective=dft2", *QUIET])  # another objective: same cache
    assert files[0].stat().st_mtime_ns == stamp
    state = torch.load(job2.output_dir / "checkpoints" / "last.ckpt", weights_only=False)["objective"]
    assert state["u_mask"].sum() > 0 and state["log_u"].numel() <= 16


@pytest.mark.slow
def test_toy_dft_from_its_base_raises_the_margin(run_job, tmp_path):
    base, job = run_job(["experiment=dft_toy_base", "trainer.max_steps=300", "trainer.val_check_interval=300", *QUIET])
    out, job2 = run_job(["experiment=dft_toy", f"runner.init_from='{job.output_dir}'", "trainer.max_steps=24", *QUIET])
    assert out == pytest.approx(json.loads((job2.output_dir / "results.json").read_text()), nan_ok=True)
    assert out["train/steps"] == 24 and out["table/val_margin"] > 1.0  # the base starts below 0 (toy_base.md)
