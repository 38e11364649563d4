"""Runners: the kinds of job (`lm`, later `generate`, `preference`, `numeric`).

A runner is ``run(cfg, run_dir) -> dict`` named by ``runner._target_``; it returns the run's final
numbers (``table/*`` keys land in results.json and the paper tables). A runner never names a
method: it asks the method for the roles it needs (`reprolab.roles`).
"""
