"""W&B dashboard of the COSMOS tables (`python -m experiments.dashboard cosmos`): beside each table, the
curves it is read from, one line per optimizer (mean ± std over seeds). Generic code and the format:
experiments/dashboard/spec.py."""
from experiments.dashboard.spec import Bar, Line, Panels, Scatter

STEP = "trainer/global_step"  # the lm runner logs through Lightning, whose step axis this is
# A tiny run of the CPU analog: every key the panels below read must be among what it logs to W&B.
PROBE = ["experiment=cosmos_tiny/cosmos", "trainer.max_steps=4", "trainer.val_check_interval=2",
         "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "data.val_sequences=16"]

LOSS = (Line("val/loss", x=STEP, title="validation loss"), Line("train/loss", x=STEP, title="training loss"))
PPL = (Line("val/ppl", x=STEP, title="validation perplexity", log_y=True), Line("train/loss", x=STEP, title="training loss"))

TABLES = {
    "tiny_loss": Panels(
        groupby=("method", "data", "lr_level"),  # best_of: every lr of the grid is a line; the table takes the best
        plots=(*LOSS, Line("val/excess_loss", x=STEP, title="excess loss over the entropy floor (Markov)", log_y=True)),
        commands=("experiments/cosmos/run_tiny_sweep.sh   # 80 runs (6 optimizers x 3-4 lr x 2 seeds x 2 datasets), "
                  "about 12 min on 2 cores",)),
    "tiny_cost": Panels(
        groupby=("method",),
        plots=(Bar("table/opt_state_bytes", title="optimizer state (bytes)"),
               Bar("table/ms_per_step", title="ms per step (shared CPU)"),
               Line("train/tokens_per_s", x=STEP, title="tokens per second")),
        commands=("experiments/cosmos/run_tiny_sweep.sh",)),
    "tiny_optuna": Panels(
        groupby=("method",),
        plots=(Scatter("config:method.lr", "summary:table/best_val_loss", title="best eval loss per Optuna trial vs lr",
                       log_x=True, groupby=()),
               Line("val/loss", x=STEP, title="validation loss, every trial", groupby=())),
        commands=tuple(f"python run.py -m experiment=cosmos_tiny_optuna/{m} launcher=joblib"
                       for m in ("adamw", "adam_mini", "galore", "muon", "soap", "cosmos"))),
    "T1": Panels(groupby=("method", "model"), plots=PPL, commands=(
        "python run.py -m experiment=cosmos_llama method=adamw,adam_mini,galore,muon,soap,cosmos",
        "python run.py -m experiment=cosmos_llama_350m method=adamw,adam_mini,galore,muon,soap,cosmos",
        "python run.py -m experiment=cosmos_llama_1b method=adamw,muon,cosmos")),
    # peak GPU memory (table/peak_mem_gb) is logged on CUDA only, so the CPU probe cannot vouch for a bar of it:
    # it is in the table panel, beside the paper's number
    "T2": Panels(groupby=("method",), plots=(Bar("table/opt_state_bytes", title="optimizer state (bytes)"),
                                              Bar("table/ms_per_step", title="ms per step")),
                 commands=("python run.py -m experiment=cosmos_memory method=adamw,soap,muon,cosmos",)),
    "T3": Panels(groupby=("method.rank", "method.gamma", "method.lr"), plots=PPL, commands=(
        "python run.py -m experiment=cosmos_llama   # the base point (rank 64, gamma 0.2, lr 2e-3): T1's COSMOS run",
        "python run.py -m experiment=cosmos_ablation method.rank=16,32,128",
        "python run.py -m experiment=cosmos_ablation method.gamma=0,0.1,0.5",
        "python run.py -m experiment=cosmos_ablation method.lr=2e-4")),
}
