from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from methods.cosmos.optimizer import NS_SPACES
from methods.linalg import QR_METHODS
from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import OptimizerMethod

NS_DTYPES = ("auto", "bfloat16", "float32")  # Newton-Schulz dtype; auto: bf16 where GEMMs run it natively (reprolab.kernels.cosmos.native_bf16)

ROUTINGS = ("name", "shape")
BACKENDS = (None, "torch", "triton")


@schema("optimizer", "cosmos")
@dataclass
class CosmosConfig(OptimizerMethod):
    """COSMOS: Liu et al., "COSMOS: A Hybrid Adaptive Optimizer for Memory-Efficient Training of
    LLMs", arXiv:2502.17410 (update: methods/cosmos/optimizer.py; spec: cosmos.md §2).

    lr: eta; embeddings, head, gains and biases (AdamW branch) step with lr, hidden matrices with
      RMS lr * lr_ratio. betas: (beta1, beta2). gamma: weight of the Muon (residual) part.
    rank: dimension of the adaptive subspace (<= min(m, n) of every hidden matrix).
    routing: ``name`` sends the embeddings and the head to AdamW whatever their shape (the
      paper's intent, needed for small vocabularies); ``shape`` is the official rule (2-D with
      <= 10000 rows -> COSMOS).
    parity: reproduce the official code's quirks (AdamW-branch momentum 0.1, nesterov=false
      without momentum, no vanishing-residual guard).
    backend: None (auto: Triton Newton-Schulz on CUDA, `reprolab.kernels.cosmos`), ``torch`` or ``triton`` (every kernel).
    qr: the power iteration's orthonormalisation: ``auto`` (CholeskyQR2 on CUDA, Householder on the
      CPU), ``householder`` (official) or ``cholesky_qr2``; the same basis up to column signs
      (`methods.linalg`).
    ns_space: where Newton-Schulz runs: ``full`` (the m x n residual, official), ``complement`` (its
      coordinates in the (n - r)-dim complement of the basis: the same update in exact arithmetic,
      fewer flops; needs the Householder QR) or ``auto`` (complement on the CPU where it pays, see
      `methods.cosmos.optimizer.complement_pays`; full on CUDA).
    Defaults: the official README (lr 2e-3, betas (0.95, 0.95), lr_ratio 0.2, gamma 0.2, rank 64);
    weight_decay 0 as in the paper's LLaMA runs (cosmos.md §8.4; README 0.1).
    """

    lr: float = 2e-3
    betas: list[float] = field(default_factory=lambda: [0.95, 0.95])
    eps: float = 1e-8
    weight_decay: float = 0.0
    lr_ratio: float = 0.2
    gamma: float = 0.2
    rank: int = 64
    nesterov: bool = True
    ns_steps: int = 5
    parity: bool = False
    routing: str = "name"
    ns_dtype: str = "auto"
    backend: Optional[str] = None
    qr: str = "auto"
    ns_space: str = "auto"

    def __post_init__(self):
        checks.positive("method.lr", self.lr)
        checks.betas("method.betas", self.betas, 2)
        checks.non_negative("method.eps", self.eps)
        checks.non_negative("method.weight_decay", self.weight_decay)
        checks.positive("method.lr_ratio", self.lr_ratio)
        checks.non_negative("method.gamma", self.gamma)
        checks.positive("method.rank", self.rank)
        checks.positive("method.ns_steps", self.ns_steps)
        checks.one_of("method.routing", self.routing, ROUTINGS)
        checks.one_of("method.ns_dtype", self.ns_dtype, NS_DTYPES)
        checks.one_of("method.backend", self.backend, BACKENDS)
        checks.one_of("method.qr", self.qr, QR_METHODS)
        checks.one_of("method.ns_space", self.ns_space, NS_SPACES)
        if self.ns_space == "complement" and self.qr == "cholesky_qr2":
            raise checks.ConfigError("method.ns_space=complement takes the complement of the basis from the "
                                     "Householder QR: set method.qr=householder (or auto), or method.ns_space=full.")

    def build_optimizer(self, model):
        from methods.cosmos.optimizer import COSMOS, RankError
        from reprolab.params import decay_groups, matrix_branch_groups

        if self.routing == "name":
            groups = matrix_branch_groups(model, "use_cosmos", {"weight_decay": self.weight_decay},
                                          {"weight_decay": self.weight_decay})
        else:
            groups = decay_groups(model, self.weight_decay)
        try:
            return COSMOS(groups, lr=self.lr, betas=tuple(self.betas), eps=self.eps, weight_decay=self.weight_decay,
                          lr_ratio=self.lr_ratio, gamma=self.gamma, rank=self.rank, nesterov=self.nesterov,
                          ns_steps=self.ns_steps, parity=self.parity, ns_dtype=self.ns_dtype, backend=self.backend,
                          qr=self.qr, ns_space=self.ns_space)
        except RankError as e:
            raise checks.ConfigError(
                f"method.rank={self.rank} is larger than the smaller side of a hidden matrix of this model "
                f"({e.limit}): set method.rank to at most {e.limit}.") from e
