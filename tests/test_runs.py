"""Whole jobs: every experiment smoke-runs; resume, failure and multirun behave as documented."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
import torch

from reprolab.app import check_launch
from reprolab.checks import ConfigError
from reprolab.config import typed
from reprolab.registry import ROOT, options
from reprolab.rundir import RunDir, RunExistsError
from tests.conftest import SHARED_DATA, TINY

# Tiny overrides per runner, so that every experiment runs for a few steps on a CPU, offline.
SMOKE = {
    "lm": TINY + ["hardware=cpu", "data.batch_size=4", "data.val_sequences=8", "trainer.accumulate_grad_batches=1"],
    # generate: a random tiny model on the offline recall task (paper-scale files need the HF hub and a GPU;
    # tests/gear/test_experiments.py runs each GEAR file with its own task).
    "generate": ["model=llama_tiny", "model.pretrained=false", "runner/task=recall", "runner.task.num_pairs=4",
                 "runner.task.num_examples=2", "runner.batch_size=2", "runner.checkpoint=null", "runner.device=cpu",
                 "runner.dtype=float32"],
    # edit: a random tiny model, two edits of a small fact world (the paper-scale files edit LLaMA-2-7B-chat on KnowEdit)
    "edit": ["model=llama_tiny", "model.pretrained=false", "runner/task=edit_facts", "runner.init_from=null",
             "runner.task.num_edits=2", "runner.task.num_locality=4", "runner.task.n_subjects=8", "runner.task.n_relations=2",
             "runner.task.n_objects=5", "runner.num_steps=2", "runner.fluency_tokens=0", "runner.device=cpu",
             "runner.dtype=float32"],
    "numeric": ["runner.max_steps=3", "runner.log_every=1", "runner.record_at=[]", "runner.accelerator=cpu",
                "runner.checkpoint_every=0"],
}
# Numeric experiments on the LIBSVM files solve the synthetic toy in the smoke run (the logistic problems
# read ../shared/data and compute a cached F* first; tests/numeric/test_libsvm.py covers them).
OFFLINE_NUMERIC = ["problem=l1_least_squares"]
# paper-scale LM experiments (LLaMA-1B on C4, GPT-2 on OpenWebText at 2048 tokens ...)
OFFLINE_LM = ["model=llama_tiny", "model.pretrained=false", "data=markov", "data.seq_len=64"]
OFFLINE_PREFERENCE = ["model=llama_tiny", "data=preference_markov"]  # paper-scale DPO family (Llama-2 7B on HH-RLHF)
OFFLINE_POSITIVES = ["model=llama_tiny", "data=dft_toy"]  # DFT on text files (UltraFeedback, MetaMathQA: Mistral-7B)
OFFLINE_CONTRASTIVE = ["model=clip_mlp", "data=gmm_pairs"]  # CLIP-style training (ResNet-50 + DistilBERT on CC3M)
# generate experiments with highlightable contexts (AutoPASTA) keep their task family: recall_qa stays, with few
# examples; the QA ones (NQ-Swap, HotpotQA: the hub) read a two-paragraph SQuAD-format file written by the test
HIGHLIGHT_SMOKE = ["runner.task.profile_examples=2", "runner.checkpoint=null", "runner.batch_size=2",
                   "runner.device=cpu", "runner.dtype=float32", "model=llama_tiny", "model.pretrained=false"]
QA_SMOKE = ["runner/task=qa_squad", "runner.tokenizer=byte", "runner.task.chat=false", "runner.task.max_examples=2",
            "runner.task.max_new_tokens=3", "runner.task.file=squad.json", "runner.task.profile_file=squad.json"]
SQUAD = {"version": "1.1", "data": [{"title": "t", "paragraphs": [
    {"context": "The cat sat on the mat. The dog ran in the park. Rain fell all day.",
     "qas": [{"id": "q1", "question": "Where did the dog run?", "answers": [{"text": "in the park", "answer_start": 36}]},
             {"id": "q2", "question": "What fell all day?", "answers": [{"text": "Rain", "answer_start": 49}]}]},
    {"context": "Paris is in France. Rome is in Italy.",
     "qas": [{"id": "q3", "question": "Where is Rome?", "answers": [{"text": "Italy", "answer_start": 31}]}]}]}]}


def smoke_overrides(compose, experiment, tmp_path):
    cfg, job = compose([f"experiment={experiment}"])
    runner = job.choices["runner"]
    if runner == "lmeval":
        pytest.skip("runner=lmeval scores lm-eval tasks from the hub; tests/tempnet/test_lmeval.py runs "
                    "experiment=tempnet_eval on a local task (slow, needs the eval extra)")
    assert runner in SMOKE, f"add tiny smoke overrides for runner {runner!r} to tests/test_runs.py"
    task = job.choices.get("runner/task", "")
    if runner == "generate" and task == "recall_qa":
        return [f"experiment={experiment}", *HIGHLIGHT_SMOKE, "runner.task.num_examples=2"]
    if runner == "generate" and task.startswith("qa_"):
        (tmp_path / "squad.json").write_text(json.dumps(SQUAD))
        return [f"experiment={experiment}", *HIGHLIGHT_SMOKE, *QA_SMOKE, f"runner.task.data_dir={tmp_path}"]
    extra = []
    if runner == "numeric" and job.choices.get("problem") in ("a9a", "w8a"):
        extra = OFFLINE_NUMERIC
    if runner == "lm":
        data = typed(cfg.data)
        kind = type(data).kind
        big = cfg.model.get("hidden_size", 0) > 256 or getattr(data, "hf_path", "text") != "text"
        offline = {"preference": OFFLINE_PREFERENCE, "positives": OFFLINE_POSITIVES,
                   "contrastive": OFFLINE_CONTRASTIVE}.get(kind, OFFLINE_LM)
        extra = offline if big else []
        if not big and OmegaConf.select(cfg, "data.train_file") and not (SHARED_DATA / "SOURCES.md").exists():
            pytest.skip(f"{experiment} trains on a file of ../shared/data, which is absent ({SHARED_DATA}); set "
                        "REPROLAB_DATA_DIR to the folder with the real small datasets")
        if big and _has(cfg, "temperature.vocab_size"):  # a TempNet sized for the paper's vocabulary
            extra = [*extra, "temperature.vocab_size=null"]
        if big and OmegaConf.select(cfg, "runner.eval") is not None:  # paper test sets the offline data cannot encode
            extra = [*extra, "runner.eval=null", "~kv_cache"]  # (tests/roselora/test_llm_adapters.py scores one)
    # a smoke key the experiment's model or data does not have (an MLP reward model's data has no
    # val_sequences) is left out: the experiment is already small there
    smoke = [o for o in SMOKE[runner] if "." not in o.split("=")[0] or _has(cfg, o.split("=")[0])]
    return [f"experiment={experiment}", *extra, *smoke]


def _has(cfg, key: str) -> bool:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return node is not None and leaf in node


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_smoke_runs(compose, run_job, experiment, tmp_path):
    seed = compose([f"experiment={experiment}"])[0].seed  # an experiment may fix its own (TempNet's GPT-2: 12)
    results, job = run_job(smoke_overrides(compose, experiment, tmp_path))
    folder = job.output_dir
    for f in ("config.yaml", "overrides.yaml", "run.json", "results.json", "metrics.csv", "checkpoints/last.ckpt"):
        assert (folder / f).exists(), f
    meta = json.loads((folder / "run.json").read_text())
    assert meta["status"] == "complete" and meta["seed"] == seed and "torch" in meta["versions"]
    assert "commit" in meta and meta["wandb_id"]
    assert list((folder / "wandb").glob(f"offline-run-*-{meta['wandb_id']}")), "no offline W&B run"
    assert any(k.startswith("table/") for k in results)
    assert json.loads((folder / "results.json").read_text()) == pytest.approx(results, nan_ok=True)


def test_quickstart_reports_floor_excess_and_throughput(run_job):
    results, job = run_job(SMOKE["lm"] + ["method=adamw"])
    assert results["table/excess_loss"] == pytest.approx(results["table/val_loss"] - results["table/entropy_floor"])
    assert results["table/entropy_floor"] > 0 and results["table/tokens_per_s"] > 0
    n_tensors = 21  # llama_tiny: embed, 2 x (4 attn + 3 mlp + 2 norms), final norm, head
    # AdamW: m and v in fp32 per element, plus a 4-byte step counter per tensor
    assert results["table/opt_state_bytes"] == 2 * 4 * results["table/params"] + 4 * n_tensors


def test_finished_run_is_reported_not_retrained(run_job):
    first, job = run_job(SMOKE["lm"])
    stamp = (job.output_dir / "results.json").stat().st_mtime_ns
    again, _ = run_job(SMOKE["lm"])
    assert again == first and (job.output_dir / "results.json").stat().st_mtime_ns == stamp


def test_resume_never_refuses_to_touch_an_existing_run(run_job):
    _, job = run_job(SMOKE["lm"])
    before = {p: p.read_bytes() for p in job.output_dir.rglob("*") if p.is_file() and "wandb" not in p.parts}
    with pytest.raises(RunExistsError, match="resume=auto"):
        run_job(SMOKE["lm"] + ["resume=never"])
    assert {p: p.read_bytes() for p in before} == before


def test_nan_loss_stops_names_the_step_and_keeps_the_checkpoint(run_job, tmp_path):
    from runners.lm.module import NonFiniteLossError

    args = SMOKE["lm"] + ["method=sgd", "method.lr=1e8", "trainer.max_steps=30", "runner.checkpoint_every=1",
                          "runner.warmup_steps=0"]
    with pytest.raises(NonFiniteLossError, match=r"at step \d+") as e:
        run_job(args)
    folder = next((tmp_path / "logs" / "quickstart").iterdir())
    assert (folder / "checkpoints" / "last.ckpt").exists() and str(folder / "checkpoints/last.ckpt") in str(e.value)
    meta = json.loads((folder / "run.json").read_text())
    assert meta["status"] == "failed" and "NonFiniteLossError" in meta["error"]
    assert not (folder / "results.json").exists()


def test_ddp_inside_a_local_multirun_is_refused(compose):
    cfg, job = compose(["hardware=ddp"], multirun=True)
    with pytest.raises(ConfigError, match="ddp_spawn"):
        check_launch(cfg, job)
    cfg, job = compose(["hardware=ddp_spawn"], multirun=True)
    check_launch(cfg, job)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_experiment_on_a_cpu_machine_says_so_before_lightning_does(compose):
    cfg, job = compose(["experiment=cosmos_llama"])
    with pytest.raises(ConfigError, match=r"hardware=gpu runs on a GPU.* override hardware=cpu"):
        check_launch(cfg, job)
    cfg, job = compose(["experiment=nag_mf_paper_scale"])
    with pytest.raises(ConfigError, match=r"runner.accelerator=gpu runs on a GPU.* override runner.accelerator=cpu"):
        check_launch(cfg, job)
    cfg, job = compose(["experiment=gear_llama2_7b_2bit"])
    with pytest.raises(ConfigError, match=r"runner.device=cuda runs on a GPU.* override runner.device=cpu"):
        check_launch(cfg, job)


def _run_py(args, log_dir, **kw):
    # A child must not attach to this process's W&B service (in-process tests started one): a killed
    # child's run would stay registered there and block its resume ("run ID is in use").
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_SERVICE")}
    env.update(WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    return subprocess.Popen([sys.executable, "run.py", *flags, f"paths.log_dir={log_dir}", *overrides], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


RESUME_ARGS = ["trainer.max_steps=40", "trainer.val_check_interval=20", "runner.checkpoint_every=10",
               "trainer.deterministic=true", "trainer.enable_progress_bar=false", "data.batch_size=8",
               "data.val_sequences=16", "runner.warmup_steps=5"]


def test_sigkilled_run_resumes_to_the_same_final_loss(tmp_path):
    """Kill -9 mid-run (after a checkpoint), resume with resume=auto: same numbers as an uninterrupted run."""
    straight = _run_py(RESUME_ARGS, tmp_path / "a")
    killed = _run_py(RESUME_ARGS, tmp_path / "b", start_new_session=True)
    folder = tmp_path / "b" / "quickstart"
    deadline = time.time() + 300
    while not list(folder.glob("*/checkpoints/last.ckpt")):
        assert killed.poll() is None and time.time() < deadline, killed.stdout.read()
        time.sleep(0.05)
    time.sleep(0.5)  # a few steps past the checkpoint
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    run = RunDir(next(folder.iterdir()))
    assert run.status == "unfinished" and run.resuming
    resumed = _run_py(RESUME_ARGS + ["resume=auto"], tmp_path / "b")
    out_resumed, out_straight = resumed.communicate(timeout=600)[0], straight.communicate(timeout=600)[0]
    assert resumed.returncode == 0, out_resumed
    assert straight.returncode == 0, out_straight
    a = json.loads(next((tmp_path / "a" / "quickstart").glob("*/results.json")).read_text())
    b = json.loads((run.path / "results.json").read_text())
    for key in ("table/val_loss", "train/loss", "table/best_val_loss"):
        assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-7), key
    meta = json.loads((run.path / "run.json").read_text())
    assert [h["action"] for h in meta["history"]] == ["start", "interrupted", "resume"]  # the kill, recorded at restart
    assert str(killed.pid) in meta["history"][1]["detail"]
    assert len(list((run.path / "wandb").glob(f"offline-run-*-{meta['wandb_id']}"))) >= 2  # one W&B id, two segments


def test_multirun_makes_separate_runs_and_wandb_runs(tmp_path):
    proc = _run_py(["-m", "seed=0,1", "method=adamw", *SMOKE["lm"]], tmp_path)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    folders = sorted((tmp_path / "quickstart").glob("*seed=*"))
    assert ["seed=0" in f.name for f in folders] == [True, False] and "seed=1" in folders[1].name
    ids = [json.loads((f / "run.json").read_text())["wandb_id"] for f in folders]
    assert len(set(ids)) == 2
    for f, i in zip(folders, ids):
        assert (f / "results.json").exists() and list((f / "wandb").glob(f"offline-run-*-{i}"))
    # the sweep's end rebuilt the quickstart table from both seeds
    table = (tmp_path / "reports" / "quickstart" / "main.md").read_text()
    assert "(n=2)" in table


def test_a_sweep_over_experiments_runs_each_with_its_own_method(tmp_path):
    """`-m experiment=a,b` composes each job from its experiment; no default experiment's sweep leaks in."""
    proc = _run_py(["-m", "experiment=cosmos_tiny/adamw,cosmos_tiny/galore", *SMOKE["lm"]], tmp_path)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    runs = {f.parent.parent.name: json.loads((f.parent / "run.json").read_text())["choices"]["method"]
            for f in tmp_path.glob("*/*/results.json")}
    assert runs == {"cosmos_tiny_adamw": "adamw", "cosmos_tiny_galore": "galore"}, out


def test_an_experiments_own_sweep_left_out_of_a_multirun_is_named(caplog):
    from reprolab.app import JobInfo, warn_unswept

    job = JobInfo(output_dir=Path("."), overrides=["experiment=nag_mf_curves", "seed=1"], multirun=True,
                  choices={"experiment": "nag_mf_curves"}, sweep_params={"problem.d": "5,20", "seed": "0,1"})
    with caplog.at_level("WARNING", logger="reprolab"):
        warn_unswept(job)
    assert "{'problem.d': '5,20'}" in caplog.text and "python run.py -m experiment=nag_mf_curves" in caplog.text
    caplog.clear()
    job.overrides.append("problem.d=5")
    with caplog.at_level("WARNING", logger="reprolab"):
        warn_unswept(job)
    assert caplog.text == ""


@pytest.mark.slow
def test_joblib_launcher_runs_a_sweep_in_parallel_processes(tmp_path):
    proc = _run_py(["-m", "launcher=joblib", "seed=0,1", "method=adamw", *SMOKE["lm"]], tmp_path)
    out = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, out
    assert len(list((tmp_path / "quickstart").glob("*/results.json"))) == 2
