"""The knowledge-editing task (runners/edit, reprolab/data/editing): EasyEdit's metrics on their fixed points
(§6.11), loss on the target tokens only (§6.8), early stop (§6.9), the fact world, the real CounterFact / zsRE
samples (multi-token targets), batched edits, bad input; RoseLoRA through the slots with COSMOS, and its adapter
file refused by another base model."""
from __future__ import annotations

import math

import pytest
import torch

from reprolab.checks import UserError
from reprolab.csvlog import read_rows
from reprolab.data.editing import FactWorld, counterfact, zsre
from reprolab.models.config import CausalLM
from runners.edit import metrics
from tests.conftest import SHARED_DATA, TINY

SMALL = ["model.hidden_size=32", "model.intermediate_size=64", "logger=csv", "callbacks=none"]
needs_editing_data = pytest.mark.skipif(not (SHARED_DATA / "editing").is_dir(),
                                        reason=f"the editing samples are not at {SHARED_DATA / 'editing'} "
                                               "(set REPROLAB_DATA_DIR to the shared data folder)")


def world_model(seed=0):
    world = FactWorld(n_subjects=12, n_relations=3, n_objects=10)
    torch.manual_seed(seed)
    model = CausalLM(hidden_size=32, intermediate_size=64).build(world.tokenizer.vocab_size).eval()
    return world, model


# ---- metrics --------------------------------------------------------------------------------------------
def test_unedited_model_has_full_locality_and_scores_its_own_greedy_answer():
    """§6.11: locality of an unedited model = 100; rewrite accuracy of the model on its own greedy answer = 100."""
    world, model = world_model()
    tok = world.tokenizer
    req = world.requests(3, 20, seed=0)
    loc = [metrics.encode(tok, p, a) for r in req for p, a in r.locality]
    pre = metrics.predictions(model, loc, 0, 7)
    assert metrics.agreement(metrics.predictions(model, loc, 0, 5), pre) == [1.0] * len(loc)
    for r in req:
        ids = torch.tensor([tok.encode(r.prompt)])
        greedy = tok.decode(model.generate(ids, max_new_tokens=2, do_sample=False, pad_token_id=0)[0, ids.shape[1]:])
        enc = [metrics.encode(tok, r.prompt, greedy)]
        assert metrics.accuracy(metrics.predictions(model, enc, 0, 4), enc) == [1.0]


def test_loss_is_on_the_target_tokens_only():
    """§6.8: the edit loss is the mean over edits of the mean target-token cross-entropy; the gradient reaches no
    logit of a prompt position (nor of the padding)."""
    world, model = world_model()
    tok = world.tokenizer
    enc = [metrics.encode(tok, "<bos> the r1 of s2 is", "o3 o4"), metrics.encode(tok, "<bos> s1 r0 is", "o5")]
    assert [n for _, n in enc] == [2, 1]
    seen = {}

    def keep(module, args, out):
        out.retain_grad()
        seen["logits"] = out

    model.lm_head.register_forward_hook(keep)
    loss = metrics.edit_loss(model, enc, 0)
    loss.backward()
    logits = seen["logits"]
    manual = (torch.nn.functional.cross_entropy(logits[0, 5:7], torch.tensor(enc[0][0][6:8])) +
              torch.nn.functional.cross_entropy(logits[1, 3:4], torch.tensor(enc[1][0][4:5]))) / 2
    torch.testing.assert_close(loss, manual)
    grad_rows = logits.grad.abs().sum(-1)
    expected = torch.zeros_like(grad_rows, dtype=torch.bool)
    expected[0, 5:7] = expected[1, 3] = True
    assert torch.equal(grad_rows > 0, expected)


def test_fluency_is_easyedits_weighted_ngram_entropy():
    h2 = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))  # bigrams of "a b a b": ab ×2, ba ×1
    assert metrics.ngram_entropy("a b a b") == pytest.approx((2 / 3 * h2 + 4 / 3 * 1.0) / 2)
    assert metrics.ngram_entropy("a a a a a") == 0.0


def test_fact_world_requests():
    world = FactWorld(n_subjects=20, n_relations=5, n_objects=10, seed=3)
    reqs = world.requests(10, 15, seed=1)
    assert len({r.prompt for r in reqs}) == 10
    for r in reqs:
        s, rel = r.prompt.split()[1:3]
        assert r.target_new != r.ground_truth and len(r.locality) == 15
        assert all((p.split()[1] == s) != (p.split()[2] == rel) for p, _ in r.locality)  # shares exactly one
        assert r.rephrase == (f"<bos> the {rel} of {s} is",)
    truth = world.requests(10, 15, seed=1, counterfactual=False)  # fine-tuning: the same facts, their true objects
    assert [r.prompt for r in truth] == [r.prompt for r in reqs]
    for r in truth:
        s, rel = (int(w[1:]) for w in r.prompt.split()[1:3])
        assert r.target_new == r.ground_truth == world.object(s, rel)


# ---- the runner -----------------------------------------------------------------------------------------
def edit_run(run_job, *extra):
    return run_job(["runner=edit", "model=llama_tiny", *SMALL, "~experiment", "runner.num_steps=4",
                    "runner.task.n_subjects=12", "runner.task.n_relations=3", "runner.task.n_objects=10",
                    "runner.task.num_edits=3", "runner.task.num_locality=10", "optimizer=adamw", "optimizer.lr=5e-2",
                    *extra])


def test_edit_runner_on_the_fact_world(run_job):
    results, job = edit_run(run_job, "adapter=roselora", "adapter.t_init=0", "adapter.t_final=3", "adapter.clamp=null")
    _, rows = read_rows(job.output_dir / "metrics.csv")
    assert results["table/edits"] == 3 == len(rows) and results["table/steps"] == 4
    assert results["table/pre_edit_succ"] == 0  # the new object is not the model's answer yet
    assert 0 <= results["table/locality"] <= 100 and results["table/edit_succ"] >= 0
    kept = (32 - math.floor(32 * 0.95) + 1) / 32  # per row / column of the 32 x 32 q, v
    assert 0 < results["table/delta_density"] <= 8 * kept ** 2


def test_batched_edits_share_one_copy(run_job):
    results, job = edit_run(run_job, "adapter=lora", "runner.batch_edits=2")
    _, rows = read_rows(job.output_dir / "metrics.csv")
    assert [r["step"] for r in rows] == ["0", "1", "2"]
    assert rows[0]["final_loss"] == rows[1]["final_loss"] != rows[2]["final_loss"]
    assert results["table/delta_density"] == 1.0


def test_early_stop_after_the_burn_in(run_job):
    """§6.9: stop at the first step past runner.early_stop_after whose loss is below runner.early_stop_loss."""
    results, _ = edit_run(run_job, "adapter=ft_layer", "runner.early_stop_after=1", "runner.early_stop_loss=1e9")
    assert results["table/steps"] == 3  # steps 0, 1, 2: 2 > 1 is the first past the burn-in


def test_edit_task_must_be_an_edit_task(run_job):
    from reprolab.checks import ConfigError

    with pytest.raises(ConfigError, match="not an edit task"):
        run_job(["runner=edit", "model=llama_tiny", *SMALL, "~experiment", "runner/task=recall"])


@needs_editing_data
def test_real_samples_load_in_place():
    cf = counterfact(SHARED_DATA / "editing" / "counterfact_edit_1k.json", 5)
    assert len(cf) == 5 and cf[0].prompt == "David Robinson professionally plays the sport"
    assert (cf[0].target_new, cf[0].ground_truth) == ("baseball", "basketball")
    assert cf[0].locality == (("Shaquille O'Neal plays", "basketball"),) and len(cf[0].rephrase) == 1
    zs = zsre(SHARED_DATA / "editing" / "zsre_mend_train_1k.json", 5)
    assert len(zs) == 5 and all(r.target_new and r.rephrase[0] and r.locality[0][1] for r in zs)


@needs_editing_data
@pytest.mark.parametrize("task", ["edit_counterfact", "edit_zsre"])
def test_multi_token_targets_are_scored_per_token_or_refused(run_job, task):
    """Byte tokens make every target several tokens: scored per token (EasyEdit's teacher-forced accuracy), or a
    clear error when the task says it scores one token."""
    base = ["runner=edit", "model=llama_tiny", *SMALL, "~experiment", f"runner/task={task}", "runner.task.num_edits=2",
            "runner.num_steps=2", "runner.tokenizer=byte", "adapter=roselora", "runner.fluency_tokens=8"]
    results, _ = run_job(base)
    assert results["table/edits"] == 2 and 0 <= results["table/edit_succ"] <= 100
    assert results["table/fluency"] >= 0 and results["table/locality"] <= 100
    with pytest.raises(UserError, match=r"is \d+ tokens and runner\.task\.single_token_targets=true"):
        run_job([*base, "runner.task.single_token_targets=true"])


# ---- composition and the adapter file -------------------------------------------------------------------
def test_roselora_trained_by_cosmos_through_the_slots(run_job):
    """`optimizer=cosmos adapter=roselora` trains in the lm runner; the checkpoint holds the importance state;
    the adapter file loads into the same base and is refused by another one."""
    from reprolab.checkpoint import load
    from reprolab.config import typed  # noqa: F401  (schemas registered by conftest)
    from methods.roselora import RoseLoRAAdapterConfig

    results, job = run_job([*TINY, *SMALL, "~experiment", "data=markov_v32", "optimizer=cosmos", "optimizer.rank=4",
                            "adapter=roselora", "adapter.r=4", "adapter.t_init=0", "adapter.t_final=2"])
    assert results["table/trainable_params"] < results["table/params"] and math.isfinite(results["table/val_loss"])
    ckpt = load(job.output_dir / "checkpoints" / "last.ckpt")
    assert ckpt["adapter"]["updates"] == 4  # one importance update per optimizer step
    saved = load(job.output_dir / "checkpoints" / "adapter.pt")
    a = [v for k, v in saved["state_dict"].items() if "lora_A" in k]
    assert a and all(((t != 0).sum(1) <= 32 - math.floor(32 * 0.95) + 1).all() for t in a)  # pruned rows
    adapter = RoseLoRAAdapterConfig(r=4)
    trained_base = CausalLM(hidden_size=32, intermediate_size=64).build(32)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    trained_base.load_state_dict({k.replace(".base_layer", ""): v for k, v in state.items() if "lora_" not in k})
    adapter.load_adapter_file(adapter.wrap(trained_base), saved)  # the same base: loads
    torch.manual_seed(123)
    other = adapter.wrap(CausalLM(hidden_size=32, intermediate_size=64).build(32))
    with pytest.raises(UserError, match="saved for another base model"):
        adapter.load_adapter_file(other, saved)
