"""Real preference data through `datasets` (data=preference_text: hh_rlhf, hh_rlhf_local, ultrafeedback, tldr):
the prompt split, the truncation policy, bad pairs, padded batches scored like unpadded ones, the shared files."""
from __future__ import annotations

import gzip
import json
import logging

import pytest
import torch

from methods.preference import policy_margins
from reprolab.checks import ConfigError
from reprolab.config import typed  # noqa: F401  (schemas registered by conftest)
from reprolab.data.config import PreferenceTextData
from reprolab.data.preference_text import BadPair, split_hh, split_row, truncate
from reprolab.data.text import DataFileError
from reprolab.models.assemble import frozen_copy
from tests.conftest import SHARED_DATA, TINY, needs_shared_data
from tests.roles.conftest import tiny_lm

H, A = "\n\nHuman:", "\n\nAssistant:"


def test_hh_prompt_is_the_shared_dialogue_up_to_the_last_assistant_turn():
    prompt = f"{H} hi{A} hello{H} what is 2+2?{A}"
    assert split_hh(prompt + " 4", prompt + " 5, I think") == (prompt, " 4", " 5, I think")
    # responses sharing their first words: the prompt still ends at the turn marker
    assert split_hh(prompt + " It is 4.", prompt + " It is 5.") == (prompt, " It is 4.", " It is 5.")
    with pytest.raises(BadPair, match="no shared prompt"):
        split_hh(" a dialogue", " another")


def test_the_other_formats_render_one_dialogue_template():
    p, c, r = split_row({"prompt": "2+2?", "chosen": "4", "rejected": "5"}, "prompt_chosen_rejected")
    assert (p, c, r) == (f"{H} 2+2?{A}", " 4", " 5")
    chat = [{"role": "user", "content": "2+2?"}]
    row = {"prompt": chat, "chosen": chat + [{"role": "assistant", "content": "4"}],
           "rejected": chat + [{"role": "assistant", "content": "5"}]}
    assert split_row(row, "prompt_chosen_rejected") == (p, c, r)
    tldr = {"info": {"post": "My cat.", "title": "t"}, "summaries": [{"text": "dog "}, {"text": " cat"}], "choice": 1}
    assert split_row(tldr, "tldr") == ("POST: My cat.\n\nTL;DR:", " cat", " dog")


def test_truncation_keeps_the_prompt_end_and_the_response_start():
    prompt, chosen, rejected = list(range(10)), [100, 101, 102, 103], [200, 201]
    assert truncate(prompt, chosen, rejected, 20, 5) == (prompt, chosen, rejected)  # fits: untouched
    assert truncate(prompt, chosen, rejected, 8, 5) == ([5, 6, 7, 8, 9], [100, 101, 102], [200, 201])
    assert truncate(prompt, chosen, rejected, 12, 9) == ([1, 2, 3, 4, 5, 6, 7, 8, 9], [100, 101, 102], [200, 201])
    with pytest.raises(ConfigError, match="data.max_prompt_length=64 must be below data.max_length=64"):
        PreferenceTextData(max_length=64, max_prompt_length=64)
    with pytest.raises(ConfigError, match="data.format"):
        PreferenceTextData(format="chatml")


def _write(path, rows):
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def _rows(n):
    return [{"chosen": f"{H} q{i}?{A} yes {i}", "rejected": f"{H} q{i}?{A} no"} for i in range(n)]


def _source(tmp_path, rows, **kw):
    _write(tmp_path / "pairs.jsonl.gz", rows)
    cfg = dict(data_dir=str(tmp_path), data_files={"train": ["pairs.jsonl.gz"]}, val_split=None, val_pairs=2, batch_size=2)
    return PreferenceTextData(**{**cfg, **kw}).build(0)


def test_bad_pairs_are_dropped_and_counted_or_refused(tmp_path, caplog):
    bad = [{"chosen": f"{H} q?{A} same", "rejected": f"{H} q?{A} same"},  # identical
           {"chosen": f"{H} q?{A}", "rejected": f"{H} q?{A} no"},  # empty chosen response
           {"chosen": f"{H} q?{A} abcdefghijklmno1", "rejected": f"{H} q?{A} abcdefghijklmno2"}]  # identical once truncated
    with caplog.at_level(logging.WARNING):
        source = _source(tmp_path, _rows(3) + bad + _rows(3), max_length=20, max_prompt_length=8)
    assert len(source.train) + len(source.val) == 6
    assert "left out 3 of 9 pairs" in caplog.text and "2 with identical chosen and rejected" in caplog.text
    assert "1 with an empty response" in caplog.text
    with pytest.raises(DataFileError, match=r"row 3 of the train split .* identical chosen and rejected.*data.bad_pairs=drop"):
        _source(tmp_path, _rows(3) + bad, bad_pairs="error")
    with pytest.raises(DataFileError, match="no field 'prompt' that data.format=prompt_chosen_rejected reads"):
        _source(tmp_path, _rows(3), format="prompt_chosen_rejected")


def test_padded_batches_score_like_each_pair_alone(tmp_path):
    """Right padding + attention masks + labels -100 on prompt and padding: the DPO margin of each pair in a
    padded batch equals the one computed from its own unpadded rows."""
    prompts = [f"{H} q{i}" + "?" * i + A for i in range(6)]  # prompts and responses of different lengths
    rows = [{"chosen": p + " " + "y" * (i + 1), "rejected": p + " " + "n" * (5 - i)} for i, p in enumerate(prompts)]
    source = _source(tmp_path, rows, val_pairs=2, batch_size=4)
    batch = next(source.train_batches(0, 0, 1))
    assert (batch["chosen_attention_mask"] == 0).any()  # the rows really are padded
    model, reference = tiny_lm(32, layers=1, vocab=256, seed=1), frozen_copy(tiny_lm(32, layers=1, vocab=256, seed=2))
    with torch.no_grad():
        margins = policy_margins(model, reference, batch)
        for b, j in enumerate(batch["pair_id"].tolist()):
            alone = policy_margins(model, reference, source.collate([source.train[j]]))
            torch.testing.assert_close(margins[b:b + 1], alone, atol=1e-5, rtol=1e-5)
            prompt, chosen, _ = source.train[j]
            labels = batch["chosen_labels"][b]
            assert labels[labels != -100].tolist() == chosen  # exactly the response tokens are scored


def test_flips_are_recorded_and_epochs_visit_every_pair_once(tmp_path):
    source = _source(tmp_path, _rows(40), flip=0.5, val_pairs=4, batch_size=4)
    clean = _source(tmp_path, _rows(40), val_pairs=4, batch_size=4)
    assert 0 < int(source.flipped.sum()) < 36
    for j in range(36):
        swapped = (source.train[j][1], source.train[j][2]) == (clean.train[j][2], clean.train[j][1])
        assert swapped == bool(source.flipped[j])
    stream = source.train_batches(0, 0, 1)
    ids = torch.cat([next(stream)["pair_id"] for _ in range(9)])
    assert sorted(ids.tolist()) == list(range(36))
    resumed = next(source.train_batches(4, 0, 1))["pair_id"]
    assert torch.equal(resumed, ids[16:20])


@needs_shared_data
def test_the_shared_hh_and_ultrafeedback_files_load():
    hh = PreferenceTextData(data_dir=str(SHARED_DATA), val_split=None,
                            data_files={"train": ["preference/hh_rlhf_helpful_base_test.jsonl.gz"]}).build(0)
    assert len(hh.train) + len(hh.val) == 2354 - 2  # SOURCES.md: 2 rows have chosen == rejected
    prompt, chosen, rejected = hh.train[0]
    assert bytes(prompt).decode().startswith(H) and bytes(prompt).decode().endswith(A) and chosen != rejected
    uf = dict(data_dir=str(SHARED_DATA), format="prompt_chosen_rejected", val_pairs=200, max_length=8192,
              max_prompt_length=4096,  # nothing truncated: the file's own pairs
              data_files={"train": ["preference/ultrafeedback_binarized_sample_train1000.jsonl"],
                          "test": ["preference/ultrafeedback_binarized_sample_eval200.jsonl"]})
    # the files hold 4 / 1 pairs with chosen == rejected (train rows 306, 655, 910, 997; eval row 43), one of
    # them a tie; SOURCES.md: 111 / 25 ties
    full = PreferenceTextData(**uf).build(0)
    assert (len(full.train), len(full.val)) == (1000 - 4, 200 - 1)
    tied = PreferenceTextData(**uf, drop_ties=True).build(0)
    assert (len(tied.train), len(tied.val)) == (1000 - 111 - 3, 200 - 25)


@pytest.mark.slow
@needs_shared_data
def test_dpo_on_hh_pairs_with_the_tiny_llama(run_job):
    """The CPU smoke: DPO from a random tiny LLaMA on 200 HH pairs (byte tokens, 256 per sequence) for 4 steps."""
    results, _ = run_job(["data=hh_rlhf_local", f"paths.data_dir={SHARED_DATA}", "objective=dpo", "model=llama_tiny",
                          "data.train_pairs=200", "data.val_pairs=8", "data.max_length=256", "data.max_prompt_length=192",
                          "data.batch_size=4", *TINY])
    assert results["train/steps"] == 4 and 0 <= results["table/val_reward_acc"] <= 1


def test_pairs_longer_than_the_models_positions_name_data_max_length(compose):
    from reprolab.config import validate

    cfg, _ = compose(["data=hh_rlhf_local", "model=llama_tiny", "objective=dpo", "data.max_length=2048"])
    with pytest.raises(ConfigError, match=r"data.max_length=2048 is longer than model.max_position_embeddings=1024.*"
                                          r"use data.max_length=1024 or less"):
        validate(cfg)
