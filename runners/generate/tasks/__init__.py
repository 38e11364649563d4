"""Tasks of the `generate` runner: each turns data into prompts and scores what the model does.

A task is a typed config (`runners.generate.tasks.config`) with a ``mode``:
- ``generate``: free greedy generation from each prompt, scored by ``score`` (accuracy);
- ``score``: teacher-forced decoding of a given continuation (perplexity).
Tasks never see the cache: the runner decodes, the task only builds examples and scores text.
"""
