"""Shared test helpers: compose the real config as run.py would, and run a job in-process."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from reprolab.config import register_resolvers
from reprolab.registry import CONF_DIR, ROOT, register_schemas

# Without a GPU the Triton kernels run in Triton's interpreter (their parity tests). Triton reads
# TRITON_INTERPRET once, when it is first imported, and any test module may import it during
# collection: so set it here, before any of them is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
register_resolvers()
register_schemas()

SHARED_DATA = Path(os.environ.get("REPROLAB_DATA_DIR", ROOT.parent / "shared" / "data"))
needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "SOURCES.md").exists(),
    reason=f"../shared/data is absent ({SHARED_DATA}); set REPROLAB_DATA_DIR to the folder with the real small datasets",
)

@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op torch thread per test process. `make test` runs two xdist workers on two cores;
    two OpenMP threads per worker spin against each other on tiny ops (measured: 15x to 75x slower
    optimizer, decoding and matrix-factorization tests). Runs that set `cpu_threads` still do."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Small enough for CPU tests, large enough that loggers, checkpoints and validation all run.
TINY = ["trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false", "runner.checkpoint_every=2"]


def compose_job(overrides: list[str], log_dir: Path, multirun: bool = False):
    """(cfg, JobInfo) exactly as run.py would get them, with runs written under ``log_dir``."""
    from reprolab.app import JobInfo

    overrides = [f"paths.log_dir={log_dir}", *overrides]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    hc = cfg.hydra
    task_overrides = [o for o in overrides if not o.startswith("hydra")]
    output_dir = Path(hc.sweep.dir) / hc.sweep.subdir if multirun else Path(hc.run.dir)
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/") and v is not None}
    job = JobInfo(output_dir=output_dir, overrides=task_overrides, choices=choices, multirun=multirun,
                  launcher=hc.runtime.choices.get("hydra/launcher") or "basic", key=hc.job.override_dirname)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, job


@pytest.fixture
def compose(tmp_path):
    def _compose(overrides=(), multirun=False):
        return compose_job(list(overrides), tmp_path / "logs", multirun=multirun)

    return _compose


@pytest.fixture
def run_job(tmp_path):
    """Run one job in-process; returns (results, JobInfo)."""
    from reprolab.app import main

    def _run(overrides=(), log_dir=None):
        cfg, job = compose_job(list(overrides), log_dir or tmp_path / "logs")
        return main(cfg, job), job

    return _run


@pytest.fixture
def hub_offline(monkeypatch):
    """The HF hub unreachable, whatever this machine's network: `reprolab.hub` sees no endpoint and
    switches the HF libraries to offline mode; every flag it sets is restored afterwards."""
    import datasets.config
    from huggingface_hub import constants

    from reprolab import hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_endpoint_answers", lambda endpoint, timeout=3.0: False)
    hub.offline_reason.cache_clear()
    yield hub
    hub.offline_reason.cache_clear()
