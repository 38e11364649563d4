"""Triton kernels, one folder per method, each with a PyTorch twin that defines its semantics."""
