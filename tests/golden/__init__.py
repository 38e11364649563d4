"""Golden per-step numbers of tiny runs (as torchtitan keeps its loss files).

One CSV per run in this folder: the per-step training loss and val losses of `lm` runs, the per-batch
scores of a `generate` run, the per-iteration errors of `numeric` runs; each headed by the command
that made it, the commit and the tolerance. `tests/test_golden.py` reruns them on CPU and compares;
`python -m tests.golden` reruns them and rewrites the files, saying what moved (`--check`: compare only).
The runs are listed in `tests/golden/runs.py`; file format and comparison in `tests/golden/table.py`.
"""
