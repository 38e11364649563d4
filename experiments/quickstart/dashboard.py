"""W&B dashboard of the quickstart (`make run`, then `python -m experiments.dashboard quickstart`): the
validation and excess loss curves of COSMOS and AdamW behind the table, and their costs. Generic code and
the format: experiments/dashboard/spec.py."""
from experiments.dashboard.spec import Bar, Line, Panels

STEP = "trainer/global_step"  # the lm runner logs through Lightning, whose step axis this is
# A tiny quickstart run: every key the panels below read must be among what it logs to W&B.
PROBE = ["experiment=quickstart", "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.log_every_n_steps=1",
         "trainer.enable_progress_bar=false", "data.val_sequences=16", "runner.checkpoint_every=0"]

TABLES = {
    "main": Panels(
        groupby=("method",),
        plots=(Line("val/loss", x=STEP, title="validation loss"),
               Line("val/excess_loss", x=STEP, title="excess loss over the entropy floor", log_y=True),
               Line("train/loss", x=STEP, title="training loss"),
               Bar("table/opt_state_bytes", title="optimizer state (bytes)"),
               Line("train/tokens_per_s", x=STEP, title="tokens per second")),
        commands=("make run   # python run.py -m method=adamw,cosmos: the quickstart experiment, 300 steps per method",)),
}
