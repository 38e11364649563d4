"""The device the kernel tests run on. Without a GPU the Triton kernels run in Triton's
interpreter: tests/conftest.py sets TRITON_INTERPRET=1 before anything imports triton."""
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
