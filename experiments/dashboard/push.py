"""``--push``: sync a paper's offline runs to W&B and save its report. Checks the login and the server first
(a short timeout, one try): without either it stops at once with one line saying what is missing."""
from __future__ import annotations

import fnmatch
import json
import netrc
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_BASE_URL = "https://api.wandb.ai"
TIMEOUT_S = 3.0


class PushError(RuntimeError):
    """--push cannot go on; the message says why and what to do."""


def base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL


def api_key(url: str) -> str | None:
    """WANDB_API_KEY, else the password `wandb login` wrote to the netrc file for the server's host."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        entry = netrc.netrc(str(path)).authenticators(urlparse(url).hostname or "")
    except (OSError, netrc.NetrcParseError):
        return None
    return entry[2] if entry else None


def reachable(url: str, timeout: float = TIMEOUT_S) -> str | None:
    """None when a TCP connection to the server opens within ``timeout``, else why not."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    return None


def preflight() -> str:
    """The server URL, after checking the login and the server; raises `PushError` at the first that fails."""
    url = base_url()
    if not api_key(url):
        raise PushError(f"--push needs a W&B login for {url}: run `wandb login` or set WANDB_API_KEY (nothing was sent; "
                        "the offline definition is written without --push).")
    why = reachable(url)
    if why:
        raise PushError(f"--push cannot reach {url} within {TIMEOUT_S:g} s ({why}): no network here, nothing was sent; "
                        "push from a machine that reaches it.")
    return url


def offline_runs(dash, runs_dir: Path) -> list[Path]:
    """The offline W&B run folders of the runs that fill the paper's tables, and of its latest report run."""
    patterns = [p for s in dash.sections for p in s.table.runs]
    found = []
    for meta_file in sorted(Path(runs_dir).rglob("run.json")):
        try:
            name = json.loads(meta_file.read_text()).get("name") or ""
        except (OSError, ValueError):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            found += sorted((meta_file.parent / "wandb").glob("offline-run-*"))
    reports = sorted((Path(runs_dir) / "reports" / dash.paper / "wandb").glob("offline-run-*"))
    return found + reports[-1:]


def push(dash, runs_dir: Path, entity: str | None, project: str) -> str:
    """Sync the offline runs (`wandb sync`), save the report; returns its URL."""
    preflight()
    runs = offline_runs(dash, runs_dir)
    if not runs:
        raise PushError(f"no offline W&B runs of {dash.paper} under {runs_dir}: run its experiments with the default "
                        "logger (logger=csv writes none), then `python -m experiments.report "
                        f"{dash.paper}`, or point --runs at their folder.")
    import wandb

    entity = entity or wandb.Api(timeout=int(TIMEOUT_S) * 3).default_entity
    print(f"syncing {len(runs)} offline runs to {entity}/{project} ...", flush=True)
    subprocess.run([sys.executable, "-m", "wandb", "sync", "--entity", entity, "--project", project,
                    *map(str, runs)], check=True)
    from experiments.dashboard import build

    rep = build.report(dash, entity, project)
    rep.save()
    return rep.url
