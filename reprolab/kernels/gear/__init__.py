"""GEAR kernels: group quantise + pack, and decode attention over the compressed cache.

Each kernel has a PyTorch twin that defines its semantics and is what runs without CUDA:
`reprolab.kernels.gear.quant` (twin of `quant_triton`) and `reprolab.kernels.gear.attention` (twin of
`attention_triton`). The Triton modules import ``triton`` and are only imported when used.
"""
