"""TempNet kernels: ``logits / tau(logits)`` of the eval-mode decode path in one call, `temper_cpu` (C, built with the
C compiler, called through ctypes, in place) and `temper_triton` (one Triton program per row, CUDA). Their PyTorch
twin, which defines the semantics, is the eager path `methods.tempnet.module.tau_folded` followed by the division.
The Triton module imports ``triton`` and is only imported when used."""
