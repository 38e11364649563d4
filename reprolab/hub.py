"""The Hugging Face hub: real loaders that fail fast, and clearly, where the hub cannot be reached.

Without network, huggingface_hub retries every request with backoff (25-45 s per file) and then
fails with a traceback; on a compute node without internet each model, tokenizer and dataset
load would do that. `online()` asks once per process whether the hub's endpoint (``HF_ENDPOINT``),
or the proxy a request would go through, accepts a TCP connection (3 s timeout). When it does
not, it switches huggingface_hub, transformers and datasets to their own offline mode
(``HF_HUB_OFFLINE=1``, also set for child processes), so a cached file loads at once and a
missing one fails at once. The loaders below turn that failure into a `HubUnavailableError` that
says what is missing and what to do instead.
"""
from __future__ import annotations

import contextlib
import functools
import os
import socket
import urllib.request
from urllib.parse import urlparse

from reprolab.checks import UserError


class HubUnavailableError(UserError, OSError):
    """A model, tokenizer or dataset could not be loaded from the HF hub or the local cache."""


def probe_address(endpoint: str) -> tuple[str, int]:
    """(host, port) a request to ``endpoint`` connects to first: its proxy when one is configured
    (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, minus NO_PROXY), else the endpoint itself."""
    url = urlparse(endpoint)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        p = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        return p.hostname, p.port or (443 if p.scheme == "https" else 80)
    return url.hostname, url.port or (443 if url.scheme == "https" else 80)


def _endpoint_answers(endpoint: str, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(probe_address(endpoint), timeout=timeout).close()
    except OSError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def offline_reason() -> str | None:
    """None when the hub can be used; else why not, after putting the HF libraries in offline mode."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE=1 is set"
    if _endpoint_answers(constants.ENDPOINT):
        return None
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True  # read at call time by huggingface_hub and transformers
    with contextlib.suppress(ImportError):
        import datasets.config

        datasets.config.HF_HUB_OFFLINE = True  # datasets copies the flag when it is imported
    return f"the hub ({constants.ENDPOINT}) cannot be reached from this machine"


def online() -> bool:
    """True when the hub can be used (checked once per process; see the module docstring)."""
    return offline_reason() is None


def _failure(what: str, error: Exception, instead: str, download: str) -> HubUnavailableError:
    """``what``: the thing, named, e.g. "tokenizer 't5-base'"; ``download``: the command that fetches it."""
    from huggingface_hub import constants

    reason = offline_reason()
    if reason is None:
        return HubUnavailableError(f"could not load {what} from the HF hub: {error}\n  {instead}")
    return HubUnavailableError(
        f"{what} is not in the local HF cache ({constants.HF_HUB_CACHE}) and {reason}. Fetch it "
        f"where there is network (`{download}`) into the same HF_HOME, or: {instead}"
    )


def from_pretrained(loader, name: str, what: str, instead: str):
    """``loader.from_pretrained(name)`` (a transformers Auto class), local cache only when offline."""
    offline_reason()  # probe once; without the hub this puts the HF libraries in offline mode
    try:
        return loader.from_pretrained(name)
    except OSError as e:
        raise _failure(f"{what} {name!r}", e, instead, f"hf download {name}") from None


def load_dataset(path: str, name: str | None, *, instead: str, **kwargs):
    """``datasets.load_dataset(path, name, **kwargs)``, local cache only when offline."""
    import datasets

    offline_reason()  # probe once; without the hub this puts the HF libraries in offline mode
    try:
        return datasets.load_dataset(path, name, **kwargs)
    except (OSError, datasets.exceptions.DatasetNotFoundError) as e:  # ConnectionError is an OSError
        label = f"dataset {path!r}" + ("" if name is None else f" (config {name!r})")
        raise _failure(label, e, instead, f"hf download --repo-type dataset {path}") from None
