"""Run the Triton kernels in Triton's interpreter when there is no GPU.

The variable must be set before `kernels.cosmos.triton_kernels` (and its @triton.jit kernels) is
imported; the kernels are imported lazily, inside the tests, so setting it here is early enough.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
