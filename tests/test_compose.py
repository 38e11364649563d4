"""Crossing papers through the role slots (issue 14 "Must show"): three compositions end to end on
the tiny LLaMA, each a few seconds on one CPU thread."""
from __future__ import annotations

import math

import torch

from reprolab.checkpoint import load
from tests.conftest import TINY

SMALL = ["model.hidden_size=32", "model.intermediate_size=64", "logger=csv", "callbacks=none"]


def _model_state(job) -> dict:
    state = load(job.output_dir / "checkpoints" / "last.ckpt")["state_dict"]
    return {k.removeprefix("model."): v for k, v in state.items()}


def test_cosmos_training_then_recall_decoded_with_gear(run_job):
    """(a) optimizer=cosmos trains on the recall data; the same run scores the recall task decoding
    through a GEAR cache (runner.eval + kv_cache)."""
    results, job = run_job(["experiment=gear_recall_train", *TINY, *SMALL, "optimizer=cosmos", "optimizer.rank=8",
                            "data.batch_size=4", "kv_cache=gear", "kv_cache.buffer=16", "kv_cache.group=16",
                            "+runner/task@runner.eval=recall", "runner.eval.num_examples=4", "runner.eval.order=forward"])
    assert results["train/steps"] == 4 and math.isfinite(results["table/val_loss"])
    assert 0 <= results["eval/accuracy"] <= 1 and results["eval/examples"] == 4
    assert results["eval/kv_fraction"] < 1  # GEAR compressed the cache the evaluation decoded through
    assert 0 <= results["eval/top1"] <= 1 and results["eval/kl"] >= 0
    config = (job.output_dir / "config.yaml").read_text()
    assert "kv_cache:" in config and "optimizer:" in config and "eval:" in config


def test_dpo_against_a_frozen_reference(run_job):
    """(b) a pairwise objective with a frozen reference on the tiny LLaMA: the reference never moves
    and is not in the checkpoint; the policy learns to prefer the chosen responses."""
    results, job = run_job([*TINY, *SMALL, "~experiment", "objective=dpo", "data=preference_markov",
                            "trainer.max_steps=8", "optimizer=adamw", "optimizer.lr=3e-3"])
    assert results["table/val_reward_acc"] > 0.5  # starts at 0 (margins are 0 when policy = reference)
    assert math.isfinite(results["table/val_loss"]) and results["table/val_loss"] < math.log(2)
    state = load(job.output_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(k.startswith("model.") for k in state)  # the reference is not saved
    assert "table/val_ppl" not in results  # a pairwise loss has no perplexity


def test_lora_adapter_trained_by_cosmos(run_job):
    """(c) adapter=lora (peft) with optimizer=cosmos: only the adapter trains, the base weights are the
    initial ones bit for bit, and the run writes the adapter alone and the merged model."""
    from reprolab.config import typed  # noqa: F401  (the schemas are registered by conftest)

    results, job = run_job([*TINY, *SMALL, "~experiment", "data=markov_v32", "optimizer=cosmos", "optimizer.rank=4",
                            "adapter=lora", "adapter.r=4"])
    assert results["table/trainable_params"] < results["table/params"]
    torch.manual_seed(0)
    from lightning import seed_everything

    from reprolab.models.config import CausalLM

    seed_everything(0, workers=True, verbose=False)
    initial = CausalLM(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4).build(32).state_dict()
    trained = _model_state(job)
    base = {k.replace(".base_layer", ""): v for k, v in trained.items() if "lora_" not in k}
    assert set(base) == set(initial)
    assert all(torch.equal(base[k], initial[k]) for k in initial)
    lora_b = [v for k, v in trained.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at 0: the adapter did train
    adapter = load(job.output_dir / "checkpoints" / "adapter.pt")
    assert adapter["adapter"] == "lora" and set(adapter["state_dict"]) == {k for k in trained if "lora_" in k}
    merged = load(job.output_dir / "checkpoints" / "merged.ckpt")["state_dict"]
    assert set(merged) == {f"model.{k}" for k in initial}


def test_dpo_from_an_sft_checkpoint_and_a_reference_of_another_vocabulary(run_job, tmp_path):
    """runner.init_from starts the policy (and its reference) from a trained model; a reference whose
    vocabulary differs from the policy's is refused, naming the key."""
    import pytest

    from reprolab.checks import ConfigError

    _, sft = run_job([*TINY, *SMALL, "~experiment", "data=markov_v32"], log_dir=tmp_path / "sft")
    results, job = run_job([*TINY, *SMALL, "~experiment", "objective=dpo", "data=preference_markov",
                            f"runner.init_from='{sft.output_dir}'"], log_dir=tmp_path / "dpo")
    assert math.isfinite(results["table/val_loss"])
    _, other = run_job([*TINY, *SMALL, "~experiment", "data=markov"], log_dir=tmp_path / "v256")  # 256 tokens
    with pytest.raises(ConfigError, match="runner.reference_from=.* has a vocabulary of 256 tokens and this run's model 32"):
        run_job([*TINY, *SMALL, "~experiment", "objective=dpo", "data=preference_markov",
                 f"runner.reference_from='{other.output_dir}'"], log_dir=tmp_path / "bad")
