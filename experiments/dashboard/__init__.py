"""W&B dashboards of the paper tables, as code: `spec` (what a paper's dashboard shows), `build` (the
`wandb_workspaces` report, offline), `push` (sync the runs and save it), `wandb_file` (read back what a run
logged offline). Entry point: ``python -m experiments.dashboard <paper>``."""
