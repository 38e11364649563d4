"""DFT's data: the epoch schedule of negatives (property 9), masking (property 10), the negatives cache
(reused, refused for another model/tokenizer/data) and the bad inputs of issue 16."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from methods.dft import DFT2Config, DFTConfig
from methods.dft.data_config import DFTTextData, DFTToyData, DFTToyPairsData
from reprolab.checks import ConfigError, UserError
from tests.conftest import SHARED_DATA, needs_shared_data
from tests.roles.conftest import tiny_lm


# ---- 9. the negative schedule ------------------------------------------------------------------------
@pytest.mark.parametrize("world", [1, 2])
def test_every_prompt_once_per_epoch_with_the_epochs_columns(toy_run, world):
    source, _ = toy_run  # 256 prompts, 8 a step, K = 4 negatives, m = 2
    n, per_epoch = len(source.train), len(source.train) // (8 * world)
    for epoch, cols in [(0, [0, 1]), (1, [2, 3]), (2, [0, 1])]:  # past K/m epochs the pool is cycled
        seen = Counter()
        for rank in range(world):
            for i in range(epoch * per_epoch, (epoch + 1) * per_epoch):
                e, ids = source.batch_rows(i, rank, world)
                assert e == epoch and source.columns(e) == cols
                seen.update(ids.tolist())
        assert sorted(seen) == list(range(n)) and set(seen.values()) == {1}


def test_each_u_entry_is_updated_once_per_epoch(toy_run, monkeypatch):
    source, model = toy_run
    cfg = DFTConfig()
    counts = Counter()
    original = cfg.table.set
    monkeypatch.setattr(cfg.table, "set", lambda ids, v: (counts.update(ids.tolist()), original(ids, v)))
    batches = source.train_batches(0, 0, 1)
    for _ in range(2 * len(source.train) // 8):  # two epochs
        batch = next(batches)
        with torch.no_grad():
            cfg.loss(model, batch)
    assert set(counts.values()) == {2} and len(counts) == len(source.train)


def test_batches_serve_the_epochs_negatives_and_their_reference_scores(toy_run):
    source, _ = toy_run
    per_epoch = len(source.train) // 8
    batch = next(source.train_batches(per_epoch, 0, 1))  # the first batch of epoch 1: columns 2, 3
    ids = batch["prompt_id"].tolist()
    for r, i in enumerate(ids):
        for j, c in enumerate([2, 3]):
            answer = source.negatives.answers[i][c]
            labels = batch["neg_labels"][r, j]
            assert labels[labels != -100].tolist() == answer
    torch.testing.assert_close(batch["neg_ref_logps"], source.negatives.ref_logps[ids][:, [2, 3]])
    assert batch["epoch"].tolist() == [1] * len(ids)


def test_same_index_same_batch(toy_run):
    source, _ = toy_run
    a, b = next(source.train_batches(37, 1, 2)), next(source.train_batches(37, 1, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---- 10. masking -------------------------------------------------------------------------------------
def test_answer_logps_skip_the_prompt_and_the_padding():
    from methods.dft.data import padded
    from methods.dft.objective import answer_logps

    model = tiny_lm(vocab=12)
    short = padded([([1, 2, 3], [4, 5])], 0)
    long = padded([([1, 2, 3], [4, 5]), ([1, 2, 3, 4, 5, 6, 7], [8, 9, 10])], 0)  # row 0 padded by 5 more
    lp_s, n_s = answer_logps(model, short["input_ids"], short["labels"], short["attention_mask"])
    lp_l, n_l = answer_logps(model, long["input_ids"], long["labels"], long["attention_mask"])
    assert n_s.tolist() == [2.0] and n_l[0] == 2.0
    torch.testing.assert_close(lp_l[0], lp_s[0], rtol=1e-6, atol=1e-6)
    with torch.no_grad():  # by hand: log p(4 | 1 2 3) + log p(5 | 1 2 3 4)
        logp = model(input_ids=torch.tensor([[1, 2, 3, 4]])).logits.log_softmax(-1)[0]
    torch.testing.assert_close(lp_s[0], logp[2, 4] + logp[3, 5], rtol=1e-6, atol=1e-6)


def test_rows_without_answer_tokens_are_an_error():
    from methods.dft.objective import answer_logps

    labels = torch.tensor([[-100, -100, 3], [-100, -100, -100]])
    with pytest.raises(ValueError, match=r"rows \[1\] .*no answer tokens.*data.max_length"):
        answer_logps(tiny_lm(vocab=8), torch.zeros(2, 3, dtype=torch.long), labels)


# ---- the negatives cache ------------------------------------------------------------------------------
def test_cache_is_reused_across_seeds_and_objectives(tmp_path, monkeypatch):
    from methods.dft import negatives

    model = tiny_lm(vocab=9)
    a = DFTToyData(cache_dir=str(tmp_path)).build(0)
    a.prepare(model)
    assert a.negatives.path.is_file() and a.negatives.tokens_per_s > 0
    monkeypatch.setattr(negatives, "make", lambda *args: pytest.fail("generated again instead of reused"))
    b = DFTToyPairsData(cache_dir=str(tmp_path)).build(3)  # another seed, the pairwise baselines' view
    b.prepare(model)
    assert b.negatives.path == a.negatives.path and b.negatives.answers == a.negatives.answers
    torch.testing.assert_close(b.negatives.ref_logps, a.negatives.ref_logps)


def test_negatives_do_not_depend_on_the_generation_batch_size():
    model = tiny_lm(vocab=9)
    a, b = DFTToyData(gen_batch_size=7).build(0), DFTToyData(gen_batch_size=512).build(0)
    a.prepare(model)
    b.prepare(model)
    assert a.negatives.answers == b.negatives.answers


def test_another_model_gets_its_own_negatives_and_a_pinned_file_is_refused(tmp_path):
    base, other = tiny_lm(vocab=9, seed=0), tiny_lm(vocab=9, seed=1)
    a = DFTToyData(cache_dir=str(tmp_path)).build(0)
    a.prepare(base)
    b = DFTToyData(cache_dir=str(tmp_path)).build(0)
    b.prepare(other)
    assert b.negatives.path != a.negatives.path
    pinned = DFTToyData(negatives_file=str(a.negatives.path)).build(0)
    with pytest.raises(UserError, match="other model weights than this run's"):
        pinned.prepare(other)
    pinned.prepare(base)  # the model it was made with: accepted


def test_a_pinned_file_from_another_tokenizer_is_refused(tmp_path):
    model = tiny_lm(vocab=9)
    a = DFTToyData(cache_dir=str(tmp_path)).build(0)
    a.prepare(model)
    b = DFTToyData(negatives_file=str(a.negatives.path)).build(0)
    b.tokenizer_id = "another-tokenizer"
    with pytest.raises(UserError, match="other tokenizer than this run's"):
        b.prepare(model)


def test_an_unreadable_negatives_file_is_named(tmp_path):
    bad = tmp_path / "negatives-x.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="unreadable.*delete it"):
        DFTToyData(negatives_file=str(bad)).build(0).prepare(tiny_lm(vocab=9))


# ---- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [0.0, -0.1, 1.5])
def test_gamma_outside_0_1_is_refused(gamma):
    with pytest.raises(ConfigError, match="method.gamma"):
        DFTConfig(gamma=gamma)


@pytest.mark.parametrize("tau", [0.0, -1.0])
def test_tau_not_positive_is_refused(tau):
    with pytest.raises(ConfigError, match="method.tau"):
        DFT2Config(tau=tau)


def test_more_negatives_per_step_than_cached_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="data.negatives_per_step=3 is larger.*data.num_negatives=2"):
        DFTToyData(negatives_per_step=3, num_negatives=2)
    model = tiny_lm(vocab=9)
    small = DFTToyData(num_negatives=2, negatives_per_step=2, cache_dir=str(tmp_path)).build(0)
    small.prepare(model)
    asks_more = DFTToyData(num_negatives=4, negatives_per_step=4, negatives_file=str(small.negatives.path)).build(0)
    with pytest.raises(UserError, match="other sampling settings"):
        asks_more.prepare(model)


def test_cached_reference_without_reference_scores_is_named(toy_run):
    source, model = toy_run
    batch = {k: v for k, v in next(source.train_batches(0, 0, 1)).items() if k != "neg_ref_logps"}
    with pytest.raises(ValueError, match="method.reference=model"):
        DFTConfig().loss(model, batch)


def test_text_prompts_with_no_answer_are_refused(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"prompt": "2+2?", "chosen": "4"}\n{"prompt": "3+3?", "chosen": ""}\n')
    with pytest.raises(ConfigError, match="no answer tokens after masking.*'chosen'.*data.max_length"):
        DFTTextData(data_dir=str(tmp_path), train_file="d.jsonl", val_file=None, template="alpaca").build(0)


@needs_shared_data
def test_text_source_formats_like_the_official_code():
    source = DFTTextData(data_dir=str(SHARED_DATA), n_train=3, n_val=2, max_length=4096, max_prompt_length=2048).build(0)
    tok = source.tok
    ex = source.train[0]
    assert tok.decode(ex.prompt).startswith("<|user|>\n") and tok.decode(ex.prompt).endswith("</s>\n<|assistant|>\n")
    assert tok.decode(ex.gen_prompt).startswith("<|system|>\nYou are an unhelpful assistant.</s>\n<|user|>\n")
    assert tok.decode(ex.answer).endswith("</s>\n")
    assert source.negative_answer(tok.encode("  an answer</s>\nmore"), ex) == tok.encode("an answer</s>\n")
    assert source.val[0].distractor is not None


def test_shared_prompt_forward_equals_one_forward_per_sequence():
    """The DFT step forwards each prompt once and its answers after it: same log-probs and gradients as
    full sequences (right-padded rows of different prompt and answer lengths)."""
    check_shared_prompt_forward(tiny_lm(vocab=20))


def check_shared_prompt_forward(model) -> None:
    """`test_shared_prompt_forward_equals_one_forward_per_sequence` for ``model`` (vocab >= 20; also
    tests/dft/test_window_mlp.py)."""
    from methods.dft.data import padded
    from methods.dft.objective import answer_logps, positive_and_negative_logps

    prompts = [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11, 12, 13, 14], [2, 4]]
    answers = [[[5, 6, 7], [8], [9, 10, 11, 12]], [[3, 3], [4, 5, 6, 7, 8, 9], [1]], [[7], [7, 8], [19, 18, 17]]]
    rows = [padded([(p, a[k]) for p, a in zip(prompts, answers)], 0) for k in range(3)]
    t = max(r["input_ids"].shape[1] for r in rows)

    def pad(x, v):
        return torch.nn.functional.pad(x, (0, t - x.shape[1]), value=v)

    batch = {f"pos_{k}": pad(rows[0][k], -100 if k == "labels" else 0) for k in rows[0]}
    for k in rows[0]:
        batch[f"neg_{k}"] = torch.stack([pad(r[k], -100 if k == "labels" else 0) for r in rows[1:]], 1)
    lp_pos, n_pos, lp_neg, n_neg = positive_and_negative_logps(model, batch)
    (lp_pos.sum() + 2 * lp_neg.sum()).backward()
    shared = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    full = [answer_logps(model, r["input_ids"], r["labels"], r["attention_mask"]) for r in rows]
    torch.testing.assert_close(lp_pos, full[0][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lp_neg, torch.stack([full[1][0], full[2][0]], 1), rtol=1e-5, atol=1e-5)
    assert n_pos.tolist() == [3, 2, 1] and n_neg[:, 1].tolist() == [4, 1, 3]
    (full[0][0].sum() + 2 * (full[1][0].sum() + full[2][0].sum())).backward()
    for a, p in zip(shared, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("objective,data,fits", [("dft", "markov", "dft_text, dft_toy"),
                                                  ("simpo", "dft_toy", "dft_text_pairs, dft_toy_pairs")])
def test_an_objective_on_the_wrong_data_kind_names_the_data_that_fits(compose, objective, data, fits):
    from reprolab.config import validate

    cfg, job = compose([f"objective={objective}", f"data={data}"])
    with pytest.raises(ConfigError, match=f"pick data of kind .*\\({fits}"):
        validate(cfg, job.overrides)
