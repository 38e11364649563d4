"""The golden runs: each is one `python run.py <overrides>` (run in-process here), the metrics.csv columns
kept, and the tolerance a rerun must meet, with the reason for it.

Two tiers. Every run pins `cpu_threads=1`, and on one machine a CPU run of the same code with the same
torch is bit-identical (checked: the files made in one process and checked in others, `python -m
tests.golden --check`, are unchanged bit for bit): so where the file's `machine` line is this machine's,
a rerun must match exactly. Elsewhere (another CPU, another torch: other BLAS/LAPACK kernels, other
summation orders) it must match within the file's rtol/atol. Those were sized by
`python -m tests.golden --check --threads 2`, which reruns every run with two threads (another summation
order: the nearest thing to another machine that one machine has) and prints the largest changes
(2026-12-02, AMD EPYC, torch 2.13.0+cpu); each tolerance is about 10x what that moved, or 1e-5 (fp32) and
1e-9 (float64) where it moved nothing. The eigen/SVD/QR-based optimizers (SOAP, GaLore, COSMOS) move at
the first step that uses a decomposition and the change grows with the steps (COSMOS: 5e-5 after 30
steps, 2e-2 after 300), so their tolerances are wider; the exact tier holds them all to the bit.
"""
from __future__ import annotations

import datetime
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from reprolab.rundir import cpu_model
from tests.golden.table import Table, from_metrics

HERE = Path(__file__).parent
REGENERATE = "python -m tests.golden"

# Lightning logs every step to metrics.csv (the quickstart logs every 25th); no W&B run (it logs the same
# numbers); no progress bar. None of these changes a number.
LM_LOG = ("trainer.log_every_n_steps=1", "logger=csv", "trainer.enable_progress_bar=false", "cpu_threads=1")
LM_COLUMNS = ("train/loss", "val/loss")


@dataclass(frozen=True)
class Golden:
    name: str  # the file is tests/golden/<name>.csv
    overrides: tuple[str, ...]
    columns: tuple[str, ...]  # of the run's metrics.csv
    rtol: float
    atol: float
    why: str  # why this tolerance (written in the file's header)
    key: str = "step"  # the metrics.csv column numbering the rows
    slow: bool = False  # only in `make test-slow` and `python -m tests.golden --slow`

    @property
    def path(self) -> Path:
        return HERE / f"{self.name}.csv"

    @property
    def command(self) -> str:
        return "python run.py " + " ".join(self.overrides)

    @property
    def tolerance(self) -> str:
        return f"exact on the machine below; elsewhere rtol={self.rtol:g} atol={self.atol:g}: {self.why}"


def lm(name: str, overrides: tuple[str, ...], rtol: float, why: str, slow: bool = False) -> Golden:
    return Golden(name, ("experiment=quickstart", *overrides, *LM_LOG), LM_COLUMNS, rtol=rtol, atol=0.0, why=why,
                  slow=slow)


SHORT = ("trainer.max_steps=8", "trainer.val_check_interval=4", "runner.warmup_steps=2")
STILL = "2 threads moved nothing; another CPU's GEMM kernels may round differently: 1e-5, fp32's scale"


# Newton-Schulz (COSMOS, Muon) runs in bf16 where the CPU has bf16 GEMMs and in fp32 elsewhere (``ns_dtype``
# auto, reprolab.kernels.cosmos.native_bf16): their golden runs pin bf16, what auto takes on the machine that made the
# files, so that every machine runs the same precision and the tolerances below compare like with like.
BF16_NS = "method.ns_dtype=bfloat16"

GOLDEN = [
    # the quickstart (`make run` = run.py -m method=adamw,cosmos), shortened: 30 steps is its warmup
    lm("quickstart_adamw", ("method=adamw", "trainer.max_steps=30", "trainer.val_check_interval=15"), 1e-5, STILL),
    lm("quickstart_cosmos", ("method=cosmos", BF16_NS, "trainer.max_steps=30", "trainer.val_check_interval=15"), 5e-4,
       "2 threads moved the loss by up to 5.4e-5 relative (from the first step: COSMOS's QR and Newton-Schulz)"),
    # and whole (300 steps; its val losses are the README's table)
    lm("quickstart_full_adamw", ("method=adamw",), 1e-4, "2 threads moved nothing; another CPU's GEMM kernels may "
       "round differently and 300 steps grow it: 1e-4", slow=True),
    lm("quickstart_full_cosmos", ("method=cosmos", BF16_NS), 5e-2, "2 threads moved the train loss by up to 2.4e-2 and the "
       "val loss by 7e-3 relative: COSMOS's 300 steps amplify a rounding change at step 1 to the size of a change of "
       "seed, so across machines this is a loose check (quickstart_cosmos is the tight one)", slow=True),
    # every other optimizer family on the quickstart's model and data, 8 steps past a 2-step warmup
    lm("lm_muon", ("method=muon", BF16_NS, *SHORT), 1e-5, STILL),
    lm("lm_adam_mini", ("method=adam_mini", *SHORT), 1e-5, STILL),
    lm("lm_sgd", ("method=sgd", *SHORT), 1e-5, STILL),
    lm("lm_soap", ("method=soap", *SHORT), 2e-2, "2 threads moved the loss by up to 1.6e-3 relative (from the "
       "first eigendecomposition of SOAP's preconditioners on)"),
    # GaLore at a rank below the model's width, its projector refreshed mid-run
    lm("lm_galore", ("method=galore", "method.rank=16", "method.update_proj_gap=4", *SHORT), 2e-3,
       "2 threads moved the loss by up to 1.8e-4 relative (from the first SVD of the projector on)"),
    # the generate runner: the GEAR recall row (2-bit GEAR, planted KV outliers), tiny and on a seeded
    # random model (a model trained for seconds ends every answer at once; a random one decodes 17 tokens)
    Golden("generate_gear_recall",
           ("experiment=gear_recall_2bit", "runner.checkpoint=null", "method.bits=2", "method.buffer=8",
            "method.group=8", "runner.task.num_pairs=8", "runner.task.num_examples=4", "runner.batch_size=2",
            "logger=csv", "cpu_threads=1"),
           ("kl", "top1", "agreement", "prefix_agreement", "accuracy", "accuracy_fp16", "kv_bytes",
            "kv_fraction_measured", "peak_kv_bytes", "new_tokens"),
           key="batch", rtol=2e-4, atol=1e-8, why=(
               "2 threads moved the KL by up to 1.4e-5 relative and nothing else (a quantized code flips only where "
               "a value lands on a code boundary); agreement, top1 and sizes are counts of 1/34: any flip fails")),
    # the numeric runner (float64): NAG on matrix factorisation (spec §4: 150 iterations at kappa = 10)
    Golden("numeric_nag_mf",
           ("experiment=nag_mf_kappa_sweep", "method.algorithm=nag", "problem.d=20", "problem.kappa=10",
            "runner.log_every=1", "logger=csv"),
           ("train/rel_err", "train/loss", "train/imbalance_drift", "train/grad_evals"),
           rtol=1e-9, atol=1e-15, why="float64; 2 threads moved nothing; another CPU's kernels may round "
           "differently: 1e-9"),
    # and primal-dual sliding on the toy (10 of its 60 outer iterations, 8 workers)
    Golden("numeric_pd_sliding",
           ("experiment=pd_sliding_toy", "runner.max_steps=10", "logger=csv"),
           ("train/F", "train/gap", "train/consensus", "train/grad_evals", "train/lo_calls", "train/comm_rounds"),
           rtol=1e-9, atol=1e-15, why="float64; 2 threads moved nothing; another CPU's kernels may round "
           "differently: 1e-9 (LO-call counts come from stopping tests: a flip fails)"),
]
BY_NAME = {g.name: g for g in GOLDEN}


def make(g: Golden, workdir: Path, threads: int | None = None) -> Table:
    """Run ``g`` in-process (as run.py would) under ``workdir`` and return its golden columns.
    ``threads``: replace the run's cpu_threads=1 (to measure how much the summation order moves it)."""
    from reprolab.app import main
    from tests.conftest import compose_job

    overrides = [o for o in g.overrides if not (threads and o.startswith("cpu_threads="))]
    if threads:
        overrides.append(f"cpu_threads={threads}")
    cfg, job = compose_job(overrides, Path(workdir))
    main(cfg, job)
    return from_metrics(job.output_dir / "metrics.csv", g.key, list(g.columns))


def tolerance(g: Golden, file_header: dict[str, str]) -> tuple[float, float, str]:
    """(rtol, atol, which) a rerun here must meet: exact where the file was made on this machine."""
    if file_header.get("machine") == machine():
        return 0.0, 0.0, "exact: this file was made on this machine and torch, where runs are bit-identical"
    return g.rtol, g.atol, f"this is not the machine the file was made on ({file_header.get('machine')})"


def header(g: Golden) -> dict[str, str]:
    return {
        "name": g.name,
        "run": g.command,
        "commit": commit(),
        "made": str(datetime.date.today()),
        "machine": machine(),
        "tolerance": g.tolerance,
        "regenerate": f"{REGENERATE} {g.name}",
    }


def commit() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True).stdout.strip()

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ":(top,exclude)tests/golden")
    return sha + (" + uncommitted changes" if dirty else "")


def machine() -> str:
    """What decides the kernels a CPU run uses: torch's build, the vector unit torch dispatches to and
    the CPU model. Runs made here are compared with a golden file bit for bit where its `machine` line
    is this."""
    cpu = f"{platform.system()} {platform.machine()} {cpu_model()}"
    return f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), {cpu}"
