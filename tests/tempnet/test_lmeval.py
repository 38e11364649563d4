"""The lm-evaluation-harness adapter (`reprolab.lmeval`) scores a model with its temperature applied:
its log-likelihoods equal log softmax(h / tau(h)) computed by hand, and the harness runs end to end
offline on a tiny local multiple-choice task."""
from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("lm_eval", reason="lm-eval is an optional extra: pip install '.[eval]'")

from lm_eval.api.instance import Instance  # noqa: E402

from methods.tempnet import TempNetConfig  # noqa: E402
from reprolab.data.tokenizers import ByteTokenizer  # noqa: E402
from reprolab.lmeval import ReprolabLM, evaluate  # noqa: E402
from reprolab.models.assemble import attach_temperature  # noqa: E402
from tests.roles.conftest import tiny_lm  # noqa: E402


def _model():
    torch.manual_seed(0)
    model = tiny_lm(vocab=256)
    attach_temperature(model, TempNetConfig(hidden=8, tau_min=0.2, tau_max=5.0))
    with torch.no_grad():  # a tau that varies from token to token
        for p in model.temperature.parameters():
            p.add_(2 * torch.randn_like(p))
    return model.eval()


def _by_hand(model, context: str, continuation: str) -> float:
    tok = ByteTokenizer()
    ctx, cont = tok.encode(context), tok.encode(continuation)
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        hidden = model.model(input_ids=ids).last_hidden_state
        raw = torch.nn.functional.linear(hidden, model.lm_head.weight)
        logp = torch.log_softmax(raw / model.temperature(raw), -1)[0, len(ctx) - 1 : -1]
    return float(logp.gather(-1, torch.tensor(cont)[:, None]).sum())


def _tiny_task(folder, docs: list[dict]) -> None:
    """A local multiple-choice task ``tiny_mc`` (docs: question, choices, label) in ``folder``."""
    (folder / "tiny.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    (folder / "tiny_mc.yaml").write_text(
        "task: tiny_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {folder / 'tiny.jsonl'}\ntest_split: test\noutput_type: multiple_choice\n"
        "doc_to_text: '{{question}}'\ndoc_to_target: '{{label}}'\ndoc_to_choice: '{{choices}}'\n"
        "metric_list:\n  - metric: acc\n")


def test_loglikelihood_uses_the_tempered_logits():
    model = _model()
    lm = ReprolabLM(model, ByteTokenizer())
    req = [Instance("loglikelihood", {}, ("The cat sat on", " the mat"), 0)]
    (ll, greedy), = lm.loglikelihood(req)
    assert ll == pytest.approx(_by_hand(model, "The cat sat on", " the mat"), rel=1e-4)
    plain = tiny_lm(vocab=256)  # the same weights without the temperature score differently
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("temperature.")})
    (ll_plain, _), = ReprolabLM(plain, ByteTokenizer()).loglikelihood(req)
    assert abs(ll_plain - ll) > 1e-3
    rolling, = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, ("abcdefgh",), 0)])
    assert rolling == pytest.approx(_by_hand(model, "a", "bcdefgh"), rel=1e-4)  # byte: no BOS, the first byte unscored
    text, = lm.generate_until([Instance("generate_until", {}, ("ab", {"until": ["\n"], "max_gen_toks": 4}), 0)])
    assert isinstance(text, str) and len(text.encode("utf-8", "surrogateescape")) <= 4 * 4


@pytest.mark.slow  # lm-eval's task machinery and datasets take about a minute to start
def test_harness_runs_a_local_task_end_to_end(tmp_path):
    _tiny_task(tmp_path, [{"question": f"Q{i}: 2 + {i} =", "choices": [f" {2 + i}", f" {i}"], "label": 0} for i in range(4)])
    out = evaluate(_model(), ByteTokenizer(), ["tiny_mc"], include_path=str(tmp_path))
    acc = out["results"]["tiny_mc"]["acc,none"]
    assert 0.0 <= acc <= 1.0 and out["n-samples"]["tiny_mc"]["effective"] == 4


def test_runner_summarizes_the_harness_results():
    from runners.lmeval import summarize

    res = {t: {"acc,none": 0.5, "acc_norm,none": 0.6} for t in ("piqa", "hellaswag", "arc_easy", "arc_challenge")}
    res["openbookqa"] = {"acc,none": 0.25}
    res["lambada_openai"] = {"perplexity,none": 4.0, "acc,none": 0.7}
    res["wikitext"] = {"word_perplexity,none": 11.0}
    out = summarize(res)
    assert out["table/piqa"] == 50.0 and out["table/hellaswag_norm"] == 60.0
    assert out["table/avg"] == (4 * 50 + 25) / 5 and out["table/lambada_ppl"] == 4.0 and out["table/wikitext_ppl"] == 11.0
    assert "table/avg" not in summarize({"piqa": {"acc,none": 0.5}})  # the average needs all five


@pytest.mark.slow  # lm-eval's task machinery and datasets take about a minute to start
def test_lmeval_runner_scores_a_checkpoint_with_its_tempnet(run_job, tmp_path):
    """An lm run trains TempNet (frozen LM) on byte text; runner=lmeval loads both and scores a local task."""
    from tests.conftest import TINY

    _, job = run_job([*TINY, "~experiment", "logger=csv", "callbacks=none", "data=markov_v32", "model.hidden_size=32",
                      "model.intermediate_size=64", "data.vocab_size=256", "optimizer=adamw", "objective=dro_lm",
                      "objective.rho=2", "temperature=tempnet", "temperature.hidden=8", "temperature.frozen_model=true"])
    tasks = tmp_path / "tasks"  # a folder of task YAMLs only (the harness indexes every YAML under it)
    tasks.mkdir()
    _tiny_task(tasks, [{"question": f"Q{i}", "choices": [" a", " b"], "label": i % 2} for i in range(4)])
    out, ev = run_job(["experiment=tempnet_eval", "hardware=cpu", "logger=csv", "model.hidden_size=32",
                       "model.intermediate_size=64", "temperature=tempnet", "temperature.hidden=8", "runner.dtype=float32",
                       f"runner.checkpoint='{job.output_dir}'", "runner.tasks=[tiny_mc]", f"runner.include_path={tasks}",
                       "runner.label=test"], log_dir=tmp_path / "eval")
    assert 0 <= out["table/tiny_mc"] <= 100 and (ev.output_dir / "lmeval.json").exists()
