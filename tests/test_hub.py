"""reprolab.hub: without the HF hub, loads fail at once with a message that says what to do."""
from __future__ import annotations

import os

import pytest

from reprolab.checks import UserError
from reprolab.hub import HubUnavailableError


def test_unreachable_hub_switches_the_hf_libraries_offline(hub_offline):
    import datasets.config
    from huggingface_hub import constants

    assert not hub_offline.online()
    assert constants.HF_HUB_OFFLINE and datasets.config.HF_HUB_OFFLINE and os.environ["HF_HUB_OFFLINE"] == "1"


def test_reachable_hub_changes_nothing(hub_offline, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(hub_offline, "_endpoint_answers", lambda endpoint, timeout=3.0: True)
    assert hub_offline.online() and not constants.HF_HUB_OFFLINE and "HF_HUB_OFFLINE" not in os.environ


def test_tokenizer_not_cached_names_it_and_the_offline_choice(hub_offline):
    from reprolab.data.tokenizers import HFTokenizer

    expect = r"tokenizer 'no-such/tokenizer' is not in the local HF cache .* cannot be reached .*hf download no-such/"
    with pytest.raises(HubUnavailableError, match=expect + r"tokenizer.*data.tokenizer=byte"):
        HFTokenizer("no-such/tokenizer")


def test_pretrained_model_not_cached_points_at_random_init(hub_offline):
    from reprolab.models.build import build_causal_lm
    from reprolab.models.config import CausalLM

    with pytest.raises(HubUnavailableError, match="model 'no-such/model' .*model.pretrained=false"):
        build_causal_lm(CausalLM(hf_id="no-such/model", pretrained=True))


def test_dataset_not_cached_says_how_to_fetch_it(hub_offline):
    expect = r"dataset 'no-such/data' \(config 'en'\) is not in .*hf download --repo-type dataset no-such/data"
    with pytest.raises(HubUnavailableError, match=expect + ".*use the local files"):
        hub_offline.load_dataset("no-such/data", "en", split="train", instead="use the local files.")


def test_hub_errors_print_without_a_traceback():
    assert issubclass(HubUnavailableError, UserError) and issubclass(HubUnavailableError, OSError)


def test_user_set_offline_mode_is_named(monkeypatch, hub_offline):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub_offline.offline_reason.cache_clear()
    assert hub_offline.offline_reason() == "HF_HUB_OFFLINE=1 is set"


@pytest.mark.parametrize("env, expect", [
    ({}, ("huggingface.co", 443)),
    ({"HTTPS_PROXY": "http://proxy.example:3128"}, ("proxy.example", 3128)),
    ({"https_proxy": "proxy.example:8080", "no_proxy": "huggingface.co"}, ("huggingface.co", 443)),
])
def test_the_probe_goes_where_requests_go(env, expect, monkeypatch):
    """Behind a proxy the endpoint itself is not reachable directly: probe the proxy instead."""
    from reprolab.hub import probe_address

    for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                "no_proxy"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert probe_address("https://huggingface.co") == expect
