"""W&B dashboard of the GEAR tables (`python -m experiments.dashboard gear`): accuracy and KL against the KV
size each cache keeps (one point per run: the trade-off the tables list), and the sweeps' knob against
what it buys. Generic code and the format: experiments/dashboard/spec.py."""
from experiments.dashboard.spec import Line, Panels, Scatter

# A tiny 2-bit GEAR recall decode on a seeded random model (as tests/golden's): every key the panels
# below read must be among what it logs to W&B.
PROBE = ["experiment=gear_recall_2bit", "runner.checkpoint=null", "method.bits=2", "method.buffer=8", "method.group=8",
         "runner.task.num_pairs=8", "runner.task.num_examples=4", "runner.batch_size=2"]

ACCURACY = Scatter("summary:table/kv_fraction", "summary:table/accuracy", title="value accuracy vs KV size (fraction of fp16)")
KL = Scatter("summary:table/kv_fraction", "summary:table/kl", title="per-step KL to fp16 vs KV size", log_y=True)
PER_BATCH = Line("eval/kl", title="per-step KL to fp16, per decoded batch", log_y=True)
RECALL = ("OMP_NUM_THREADS=1 python run.py experiment=gear_recall_train   # the tiny recall model (600 steps)",)


def knob(key: str, what: str) -> tuple:
    return tuple(Scatter(f"config:{key}", f"summary:table/{m}", title=f"{m} vs {what}", log_y=(m == "kl"), groupby=())
                 for m in ("accuracy", "kl", "kv_fraction"))


MAIN = Panels(groupby=("method", "method.bits", "runner/task"), plots=(ACCURACY,))

TABLES = {
    "recall": Panels(plots=(ACCURACY, KL, PER_BATCH), commands=RECALL + (
        "OMP_NUM_THREADS=1 python run.py -m experiment=gear_recall_ref",
        "OMP_NUM_THREADS=1 python run.py -m experiment=gear_recall_4bit",
        "OMP_NUM_THREADS=1 python run.py -m experiment=gear_recall_2bit")),
    "recall_rank": Panels(plots=(*knob("method.rank_decode", "low-rank r"), PER_BATCH),
                          commands=RECALL + ("OMP_NUM_THREADS=1 python run.py -m experiment=gear_recall_rank",)),
    "recall_buffer": Panels(plots=(*knob("method.buffer", "buffer n_b = g"), PER_BATCH),
                            commands=RECALL + ("OMP_NUM_THREADS=1 python run.py -m experiment=gear_recall_buffer",)),
    "main_llama2_7b": MAIN,
    "main_llama2_13b": MAIN,
    "main_llama3_8b": MAIN,
    "main_mistral_7b": MAIN,
}
