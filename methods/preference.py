"""Shared pieces of the pairwise preference objectives (DPO family, reward models).

A preference batch (`reprolab.data.preference`) holds ``chosen_*`` and ``rejected_*`` sequences
with pre-shifted labels (-100 where a token is not scored, e.g. the prompt). One forward over
both halves gives each sequence's log-likelihood; the objectives combine them into margins.
"""
from __future__ import annotations

import torch


def sequence_logps(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor,
                   attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(B,)``: the sum over each row's scored tokens (labels != -100) of log p(label | prefix)."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
    scored = labels != -100
    logp = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    return (logp * scored).sum(-1)


def pair_logps(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(chosen), log p(rejected)), each ``(B,)``, from one forward over both halves."""
    ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]])
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]])
    mask = None
    if "chosen_attention_mask" in batch:
        mask = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]])
    logps = sequence_logps(model, ids, labels, mask)
    n = batch["chosen_input_ids"].shape[0]
    return logps[:n], logps[n:]


def policy_margins(model: torch.nn.Module, reference: torch.nn.Module, batch: dict) -> torch.Tensor:
    """``(B,)``: [log pi(w) - log pi_ref(w)] - [log pi(l) - log pi_ref(l)], the implicit reward margin
    of a policy against its frozen reference (no gradient through the reference)."""
    pw, pl = pair_logps(model, batch)
    with torch.no_grad():
        rw, rl = pair_logps(reference, batch)
    return (pw - rw) - (pl - rl)


def reward_margins(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """``(B,)``: d = r(w) - r(l) of a reward model (item features -> one scalar per item), both halves
    of the batch in one forward."""
    chosen, rejected = batch["chosen_features"], batch["rejected_features"]
    rewards = model(torch.cat([chosen, rejected]))
    n = chosen.shape[0]
    return rewards[:n] - rewards[n:]


def pair_ids(batch: dict, name: str) -> torch.Tensor:
    """The batch's ``pair_id`` (the stable index of each training pair); an objective with per-pair
    state (``name``) cannot run on data without it."""
    if "pair_id" not in batch:
        raise KeyError(f"objective={name} keeps one value per training pair and this batch has no 'pair_id': use a "
                       "preference data source that numbers its pairs (data=preference_markov, data=preference_features).")
    return batch["pair_id"]


def full_sequences(input_ids: torch.Tensor, labels: torch.Tensor,
                   attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole sequences (prompt + response, ``(B, T + 1)``) and their attention mask from a pre-shifted
    batch: ``input_ids`` lacks a full-length row's last token, which is its last label. A right-padded
    row already holds all its tokens in ``input_ids`` (its last label is -100, so the appended column is
    masked); a left-padded or full row gets its last token back."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    last = labels[:, -1:]
    ids = torch.cat([input_ids, last.clamp(min=0)], 1)
    return ids, torch.cat([attention_mask, (last != -100).to(attention_mask.dtype)], 1)


def lm_reward_margins(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """``(B,)``: d = r(prompt + w) - r(prompt + l) of a causal-LM reward model (`reprolab.models.reward.
    LMRewardModel`: a scalar on each sequence's last non-pad token), both halves in one forward."""
    ids, mask = full_sequences(torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]]),
                               torch.cat([batch["chosen_labels"], batch["rejected_labels"]]),
                               torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]])
                               if "chosen_attention_mask" in batch else None)
    rewards = model(input_ids=ids, attention_mask=mask)
    n = batch["chosen_input_ids"].shape[0]
    return rewards[:n] - rewards[n:]
