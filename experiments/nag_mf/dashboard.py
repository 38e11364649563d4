"""W&B dashboard of the NAG-MF tables (`python -m experiments.dashboard nag_mf`): iterations to the target
error against kappa (one point per run, log-log: slope 2 for GD, 1 for NAG), and the relative-error
curves the counts are read from. Generic code and the format: experiments/dashboard/spec.py."""
from experiments.dashboard.spec import Line, Panels, Scatter

# A tiny run of the kappa sweep: every key the panels below read must be among what it logs to W&B.
PROBE = ["experiment=nag_mf_kappa_sweep", "method.algorithm=nag", "problem.d=20", "problem.kappa=10",
         "runner.max_steps=20", "runner.log_every=5"]

KAPPA = Scatter("config:problem.kappa", "summary:table/iters_to_eps", title="iterations to the target error vs kappa",
                log_x=True, log_y=True, groupby=())
CURVES = Line("train/rel_err", title="relative error ||XY^T - A|| / ||A|| per iteration", log_y=True)

TABLES = {
    "kappa_sweep": Panels(groupby=("method.algorithm", "problem.d", "problem.kappa"), plots=(KAPPA, CURVES),
                          commands=("python run.py -m experiment=nag_mf_kappa_sweep",
                                    "python run.py -m experiment=nag_mf_kappa_sweep method.c=10",
                                    "python run.py -m experiment=nag_mf_kappa_sweep method.algorithm=nag problem.kappa=200",
                                    "python run.py -m experiment=nag_mf_kappa_sweep method.algorithm=altgd",
                                    "python run.py -m experiment=nag_mf_kappa_sweep method.init=balanced "
                                    "problem.d=5,20 runner.max_steps=50000")),
    "kappa_sweep_ci": Panels(groupby=("method.algorithm", "problem.d", "problem.kappa"), plots=(KAPPA, CURVES)),
    "lnn_kappa_sweep": Panels(groupby=("method.algorithm", "problem.d", "problem.kappa"), plots=(KAPPA, CURVES)),
}
