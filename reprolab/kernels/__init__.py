"""Triton kernels, one folder per method, each with a PyTorch twin that defines its semantics.

They live under ``reprolab`` rather than in a top-level ``kernels`` package: that name is Hugging Face's
``kernels`` library, which transformers >= 5.25 installs and imports (tests/test_packaging.py)."""
