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


def test_toy_curves_average_each_validation_step_over_seeds(tmp_path):
    """experiments.dft.toy_curves: per objective and validation step, the mean and std over the finished seeds;
    an unfinished run is left out, training rows (no val metrics) are skipped."""
    from experiments.dft.toy_curves import main, read_curves

    header = "epoch,step,train/loss,val/exact_match,val/margin,val/logp_chosen,val/logp_distractor\n"
    for objective, seed, status, em, extra in [("sft", 0, "complete", 0.2, ""), ("sft", 1, "complete", 0.4, ""),
                                               ("dft", 0, "complete", 0.5, ""), ("dft", 1, "running", 0.9, ""),
                                               ("dft", 0, "complete", 0.7, "data.negatives_per_step=4,")]:
        key = f"{extra}objective={objective},runner.init_from='logs/dft_toy_base/seed=0',seed={seed}"
        run = tmp_path / "dft_toy_small_lr" / key.replace("'", "_").replace("/", "_")
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"status": status, "choices": {"objective": objective}, "key": key}))
        (run / "metrics.csv").write_text(header + "0,9,1.5,,,,\n" + f"0,9,,{em},{em - 1},-1.0,{-em}\n"
                                         + f"0,19,,{em + 0.1},{em},-0.5,-1.0\n")
    curves = read_curves(tmp_path, "dft_toy_small_lr")
    assert sorted(curves) == ["dft", "dft [data.negatives_per_step=4]", "sft"] and sorted(curves["sft"]) == [10, 20]
    assert curves["sft"][10]["val/exact_match"] == [0.2, 0.4] and curves["dft"][20]["val/margin"] == [0.5]
    main(["--runs", str(tmp_path), "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "toy_curves.md").read_text()
    assert "| sft | 10 | 0.300 ± 0.141 (n=2) | -0.70 ± 0.14 (n=2) |" in text  # mean and sample std of 0.2, 0.4
    assert "| dft | 20 | 0.600 ± 0.000 (n=1) |" in text  # the other setting is a row of its own
    assert "| dft [data.negatives_per_step=4] | 10 | 0.700 ± 0.000 (n=1) |" in text
