"""Checks no single schema can make (issue 13, items 6 and 7): the root keys, sizes across nodes."""
from __future__ import annotations

import pytest

from reprolab.checks import ConfigError
from reprolab.config import validate


@pytest.mark.parametrize("override, message", [
    ("data.seq_len=5000", (r"data.seq_len=5000 is longer than model.max_position_embeddings=1024.*"
                           r"data.seq_len=1024 or less.*model.max_position_embeddings=5000")),
    ("seed=abc", r"seed='abc' is not a whole number in \[0, 4294967295\]: e.g. seed=3"),
    ("seed=-1", r"seed=-1 is not a whole number"),
    ("seed=1.5", r"seed=1.5 is not a whole number"),
    ("resume=sometimes", r"resume='sometimes' is not one of \['auto', 'never', 'must'\]"),
    ("cpu_threads=0", r"cpu_threads=0 must be a whole number >= 1, or null"),
])
def test_bad_root_keys_and_sizes_fail_at_validation_naming_the_keys(compose, override, message):
    cfg, _ = compose([override])
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_every_error_is_named_at_once(compose):
    cfg, _ = compose(["seed=abc", "data.seq_len=5000", "model.max_position_embeddings=2048"])
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert "seed='abc'" in str(e.value) and "model.max_position_embeddings=2048" in str(e.value)


@pytest.mark.parametrize("overrides", [[], ["data.seq_len=1024"], ["seed=4294967295", "cpu_threads=2", "resume=never"],
                                       ["experiment=pd_sliding_toy"]])
def test_sizes_that_fit_pass(compose, overrides):
    validate(compose(overrides)[0])


def test_a_too_long_sequence_stops_the_job_before_a_run_folder_is_made(run_job, tmp_path):
    with pytest.raises(ConfigError, match="data.seq_len"):
        run_job(["data.seq_len=100000"])
    assert not (tmp_path / "logs").exists()
