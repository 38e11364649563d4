"""Next-token cross-entropy, the objective of causal-LM pretraining."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def next_token_loss(model: torch.nn.Module, batch: dict, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the next token over labels != -100 (labels are pre-shifted), mean or sum."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=-100,
                           reduction=reduction)
