from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import TemperatureMethod


def check_bounds(tau_min: float, tau_max: float) -> None:
    """0 < tau_min <= tau_max (equal bounds: a fixed tau), naming the keys and the fix."""
    checks.positive("method.tau_min", tau_min)
    checks.positive("method.tau_max", tau_max)
    if tau_min > tau_max:
        raise checks.ConfigError(f"method.tau_min={tau_min} > method.tau_max={tau_max}: the bounds are inverted; "
                                 "swap them (tau is (tau_max - tau_min) sigmoid(z) + tau_min).")


@dataclass
class TempNetHead(TemperatureMethod):
    """What every TempNet head shares: its tau range, dropout, whether it trains alone, its own optimizer group
    (the fields are documented by `TempNetConfig` and `methods.tempnet_clip.TempNetClipConfig`)."""

    identity: ClassVar[dict] = {"tau_min": 1.0, "tau_max": 1.0}
    tau_min: float = 0.01
    tau_max: float = 2.0
    dropout: float = 0.5
    frozen_model: bool = False
    lr: Optional[float] = None
    weight_decay: float = 0.0

    def __post_init__(self):
        check_bounds(self.tau_min, self.tau_max)
        checks.in_range("method.dropout", self.dropout, 0.0, 1.0, hi_open=True)
        if self.lr is not None:
            checks.positive("method.lr", self.lr)
        checks.non_negative("method.weight_decay", self.weight_decay)

    def trains_alone(self) -> bool:
        return self.frozen_model

    def param_group(self):
        return None if self.lr is None else {"lr": self.lr, "weight_decay": self.weight_decay}


@schema("temperature", "tempnet")
@dataclass
class TempNetConfig(TempNetHead):
    """TempNet for LLMs: a per-token temperature predicted from the detached logits, the logits divided
    by it (Qiu et al., "To Cool or not to Cool? Temperature Network Meets Large Foundation Models via
    DRO", ICML 2024, arXiv:2404.04575; ../shared/papers/tempnet.md §2.3, `methods.tempnet.module.TempNet`).
    Train it with ``objective=dro_lm`` (the paper's KL-DRO loss) or ``objective=next_token`` (the
    ablation's "TempNet without DRO"); every decoding path (greedy, sampling, any KV cache) then divides
    the logits by the predicted tau.

    hidden: the projection width M (256 in every official version).
    tau_min / tau_max: the output range; defaults 0.01 / 2.0 (`LLaMA-1/-2/megatron/model/tempnet.py`,
      the frozen-LLaMA setting); GPT-2 from scratch 0.5 / 5.0 (`GPT-2/megatron/model/tempnet.py`); the
      released LLaMA-2-Chat heads 0.01 / 1.2 (root ``tempnet.py``). Equal bounds give a fixed tau.
    dropout: inside the network (0.5 in the code; off in eval mode).
    vocab_size: the logits' size the network reads; null: the model's (its head's output). Set it to
      catch a TempNet built for another vocabulary (50304 for the padded GPT-NeoX GPT-2, 32000 LLaMA).
    shift_max: feed logits - max(logits) (the root ``tempnet.py``'s generation branch) instead of the raw
      logits its training saw; false keeps training and decoding alike.
    compiled: a decode step's tau and division as one kernel call (`methods.tempnet.compiled`; same values as
      the eager path up to rounding). null (default): where it was measured faster, on CPU: the C kernel
      (`reprolab/kernels/tempnet/temper_cpu.c`, fp32 logits of up to 8 rows, built once with the C compiler in ~0.3 s and
      cached on disk; without a compiler: one warning and the eager path); eager on CUDA. true: also the Triton
      kernel on CUDA (checked against the eager path at its first call; not timed on a GPU yet). false: eager.
    frozen_model: train only TempNet (spec §2.4 (c), `LLaMA-2/pretrain_gpt.py`): every other parameter
      gets requires_grad=False, so the LM stays bit-identical; false: train jointly (GPT-2 from scratch).
    lr / weight_decay: TempNet's own optimizer group at a constant lr (spec §2.4: GPT-2 from scratch 2e-6 with
      weight decay 0.1, `GPT-2/megatron/model/utils.py`; the frozen LLaMA-2 run its one lr 1e-4); lr null: the
      model's groups and schedule.
    """

    reads: ClassVar[str] = "logits"
    hidden: int = 256
    vocab_size: Optional[int] = None
    shift_max: bool = False
    compiled: Optional[bool] = None

    def __post_init__(self):
        super().__post_init__()
        checks.positive("method.hidden", self.hidden)
        if self.vocab_size is not None:
            checks.positive("method.vocab_size", self.vocab_size)

    def module(self, hidden_size: int):
        """The TempNet over logits of ``hidden_size`` classes (the model's vocabulary)."""
        from methods.tempnet.module import TempNet

        if self.vocab_size is not None and self.vocab_size != hidden_size:
            raise checks.ConfigError(
                f"temperature.vocab_size={self.vocab_size} and the model's head gives {hidden_size} logits: TempNet "
                f"reads the whole logit vector, so the two must agree. Set temperature.vocab_size={hidden_size} (or null "
                "to take the model's), or use the model whose vocabulary this TempNet was trained for.")
        return TempNet(hidden_size, self.hidden, self.tau_min, self.tau_max, self.dropout, self.shift_max, self.compiled)
