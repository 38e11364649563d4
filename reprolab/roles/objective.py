from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Optional

from reprolab.roles.base import Method

if TYPE_CHECKING:
    import torch

# What an objective consumes; each kind is a data config + collate (reprolab.data).
DATA_KINDS = ("tokens", "preference", "preference_features", "contrastive", "positives")


class ObjectiveMethod(Method, ABC):
    """Role: the training loss of the `lm` runner (next-token CE, the DPO family, ...).

    ``data_kind`` names the batches it consumes (`DATA_KINDS`): ``tokens`` (``input_ids``,
    ``labels`` pre-shifted with -100 for ignored positions) or ``preference`` (``chosen_*`` and
    ``rejected_*`` sequences, see `reprolab.data.preference`) or ``preference_features`` (pairs of item
    features for a reward model, see `reprolab.data.preference_features`). ``needs_reference``: the runner
    builds a frozen copy of the initial model (no grads, never checkpointed) and passes it.
    ``needs_temperature``: the run must fill the temperature slot (the loss reads ``model.temperature``).
    ``contrastive`` batches are paired ``image``/``text`` features with their dataset ``index``
    (`reprolab.data.contrastive`), for a dual encoder. ``positives`` batches hold prompts with their one good
    answer and m negatives sampled from the base model (`methods.dft.data`), for DFT and SFT on its data.

    ``loss(model, batch, reference)`` returns ``{"loss": scalar, ...}``: the scalar to
    backpropagate and other scalars logged under ``train/``. ``evaluate(model, batch, reference)``
    returns ``{name: (sum, count)}``: the runner sums both over the validation set and logs
    ``val/<name> = sum / count`` (so a token-weighted mean stays token-weighted). ``val/loss``
    must be among them: it is what the tables and the golden files read.

    An objective with state across steps (R3M's per-pair outliers, DFT's per-prompt estimates)
    returns it from ``state_dict`` (tensors and numbers); the runner saves it in every checkpoint
    and hands it back to ``load_state_dict`` on resume.
    """

    role: ClassVar[str] = "objective"
    data_kind: ClassVar[str] = "tokens"
    needs_reference: ClassVar[bool] = False
    needs_temperature: ClassVar[bool] = False  # divides by the temperature slot's tau (TempNet's DRO losses)

    @abstractmethod
    def loss(self, model: "torch.nn.Module", batch: dict,
             reference: Optional["torch.nn.Module"] = None) -> dict[str, "torch.Tensor"]:
        """``{"loss": scalar, ...}`` for one training batch."""

    def state_dict(self) -> dict:
        """What must survive a resume (none by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict` output; a stateless objective refuses state it cannot hold."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, and the checkpoint holds {sorted(state)}: "
                             "was it written by a run with another objective?")

    @abstractmethod
    def evaluate(self, model: "torch.nn.Module", batch: dict,
                 reference: Optional["torch.nn.Module"] = None) -> dict[str, tuple["torch.Tensor", "torch.Tensor"]]:
        """``{name: (sum, count)}`` for one validation batch, ``loss`` included."""
