"""Speed and memory benchmarks; each module with a ``main()`` writes its results to benchmarks/results/."""
