"""TempNet kernels: ``logits / tau(logits)`` of the eval-mode decode path in one Triton program per row
(`temper_triton`). Its PyTorch twin, which defines the semantics and runs without CUDA, is the eager path
`methods.tempnet.module.tau_folded` followed by the division. The Triton module imports ``triton`` and is only
imported when used."""
