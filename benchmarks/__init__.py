"""Speed and memory benchmarks. `python -m benchmarks` (or `make bench`) runs every module here
with a ``main()``; each writes its numbers, with command, commit and machine, to results/."""
