"""W&B dashboard of the PD-sliding tables (`python -m experiments.dashboard pd_sliding`): the optimality gap
the tables read at fixed budgets, as curves against each budget (gradients, sampled gradients,
communication rounds), and the consensus residual. Generic code and the format: experiments/dashboard/spec.py."""
from experiments.dashboard.spec import Line, Panels

# A tiny run of the toy: every key the panels below read must be among what it logs to W&B.
PROBE = ["experiment=pd_sliding_toy", "runner.max_steps=3"]


def gap_vs(budget: str, title: str) -> Line:
    return Line("train/gap", x=f"train/{budget}", title=f"gap F(x_bar) - F* vs {title}", log_x=True, log_y=True)


CONSENSUS = Line("train/consensus", x="train/comm_rounds", title="consensus residual vs communication rounds",
                 log_x=True, log_y=True)

TABLES = {
    "toy": Panels(plots=(gap_vs("grad_evals", "gradients per worker"), gap_vs("lo_calls", "linear-oracle calls"),
                         CONSENSUS),
                  commands=("python run.py experiment=pd_sliding_toy method.R=1",
                            "python run.py experiment=pd_sliding_toy method.R=3 runner.max_steps=30",
                            "python run.py experiment=pd_sliding_toy method.inner=exact",
                            "python run.py -m experiment=pd_sliding_toy_baselines",
                            "python run.py experiment=pd_sliding_toy_baselines method=cgs runner.max_steps=100")),
    "stochastic": Panels(plots=(gap_vs("samples", "sampled gradients per worker"), CONSENSUS)),
    "libsvm": Panels(groupby=("method", "method.R", "problem"),
                     plots=(gap_vs("comm_rounds", "communication rounds"), gap_vs("grad_evals", "gradients per worker")),
                     commands=("REPROLAB_DATA_DIR=../shared/data python run.py -m experiment=pd_sliding_libsvm",
                               "REPROLAB_DATA_DIR=../shared/data python run.py -m experiment=pd_sliding_libsvm_baselines")),
}
