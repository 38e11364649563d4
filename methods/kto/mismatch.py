"""KTO's reference point: the policy's KL to the reference estimated on mismatched (prompt, answer) pairs."""
from __future__ import annotations

import torch


def split_rows(input_ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None):
    """Per row (prompt tokens, answer tokens) of a right-padded pre-shifted batch."""
    rows = []
    for r in range(input_ids.shape[0]):
        n = int(mask[r].sum()) if mask is not None else input_ids.shape[1]
        seq = input_ids[r, :n].tolist() + [int(labels[r, n - 1])]
        start = int((labels[r, :n] != -100).nonzero()[0]) + 1  # first answer token's place in seq
        rows.append((seq[:start], seq[start:]))
    return rows


def mismatched_batch(batch: dict) -> dict:
    """Prompt i with the chosen answer of pair (i + 1) mod B, right-padded, labels on the answer."""
    rows = split_rows(batch["chosen_input_ids"], batch["chosen_labels"], batch.get("chosen_attention_mask"))
    pairs = [(rows[i][0], rows[(i + 1) % len(rows)][1]) for i in range(len(rows))]
    t = max(len(p) + len(a) for p, a in pairs) - 1
    ids = torch.zeros(len(pairs), t, dtype=torch.long)
    labels = torch.full((len(pairs), t), -100, dtype=torch.long)
    mask = torch.zeros(len(pairs), t, dtype=torch.long)
    for r, (p, a) in enumerate(pairs):
        seq = torch.tensor(p + a)
        ids[r, : len(seq) - 1], mask[r, : len(seq) - 1] = seq[:-1], 1
        labels[r, len(p) - 1 : len(seq) - 1] = seq[len(p):]
    device = batch["chosen_input_ids"].device
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": mask.to(device)}


@torch.no_grad()
def kl_estimate(model, reference, batch: dict) -> torch.Tensor:
    """Scalar: mean over mismatched pairs of log pi(y|x) - log pi_ref(y|x)."""
    from methods.preference import sequence_logps

    if reference is None:
        raise ValueError("objective=kto needs the frozen reference model.")
    b = mismatched_batch(batch)
    lp = sequence_logps(model, b["input_ids"], b["labels"], b["attention_mask"])
    lr = sequence_logps(reference, b["input_ids"], b["labels"], b["attention_mask"])
    return (lp - lr).mean()
