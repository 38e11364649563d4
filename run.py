#!/usr/bin/env python
"""reprolab's one entry point.

    python run.py                              # experiment=quickstart (see conf/config.yaml)
    python run.py experiment=<name>            # any file in conf/experiment/
    python run.py -m method=adamw,sgd seed=0,1 # a sweep (launcher=joblib for parallel processes)
    python run.py --cfg job                    # print the resolved config
"""
import sys

import hydra
from omegaconf import DictConfig

from reprolab.config import register_resolvers
from reprolab.registry import register_schemas

register_resolvers()
register_schemas()


def check_slots(argv: list[str]) -> None:
    """``optimizer=gear``: say which slot the plugin fills before Hydra reports a missing file."""
    from reprolab.slots import misplaced

    for message in filter(None, map(misplaced, argv)):
        sys.exit(f"Error: {message}")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from reprolab.app import JobInfo
    from reprolab.app import main as run_job
    from reprolab.sweep import objective

    return objective(cfg, run_job(cfg, JobInfo.from_hydra()))  # what hydra/sweeper=optuna optimizes (optimize=...)


if __name__ == "__main__":
    check_slots(sys.argv[1:])
    main()
