"""Triton kernels, one folder per method, each with a PyTorch twin that runs where Triton cannot."""
