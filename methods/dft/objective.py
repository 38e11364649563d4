"""The forward passes of DFT and of the other objectives on ``positives`` batches.

A ``positives`` batch (`methods.dft.data`) holds B prompts, each with its positive answer
(``pos_input_ids``/``pos_labels``/``pos_attention_mask``, ``(B, T)``) and the m negatives of this
epoch (``neg_*``, ``(B, m, T)``), labels pre-shifted and -100 on the prompt and the padding;
``prompt_id`` ``(B,)`` is each prompt's stable index; ``neg_ref_logps`` ``(B, m)`` the reference
model's log-probs of the negatives when they were cached with them. Validation batches carry
``distractor_*`` sequences where the task has a known wrong answer (the toy).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def answer_logps(model, input_ids, labels, attention_mask=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B,)`` summed answer log-probs (fp32 log-softmax, labels != -100) and ``(B,)`` answer lengths; the
    same numbers as `methods.preference.sequence_logps`, through the fused cross-entropy (no (B, T, V)
    log-softmax kept for backward).

    A row with no answer token left after masking (a prompt that filled the whole length) is an error:
    its DFT2 score would be 0/0 and its DFT score a constant 0.
    """
    lengths = (labels != -100).sum(-1)
    if (lengths == 0).any():
        rows = (lengths == 0).nonzero().flatten().tolist()
        raise ValueError(f"rows {rows[:8]} of the batch have no answer tokens after masking (the prompt took the whole "
                         "sequence): raise data.max_length or lower data.max_prompt_length so that answers survive.")
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    nll = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="none")
    return -nll.view_as(labels).sum(-1), lengths.to(torch.float32)


def positive_and_negative_logps(model, batch: dict):
    """One forward over [positives (B); negatives (B*m)]: (lp_pos (B,), len_pos, lp_neg (B, m), len_neg)."""
    b, m, t = batch["neg_input_ids"].shape
    ids = torch.cat([batch["pos_input_ids"], batch["neg_input_ids"].reshape(b * m, t)])
    labels = torch.cat([batch["pos_labels"], batch["neg_labels"].reshape(b * m, t)])
    mask = torch.cat([batch["pos_attention_mask"], batch["neg_attention_mask"].reshape(b * m, t)])
    lp, n = answer_logps(model, ids, labels, mask)
    return lp[:b], n[:b], lp[b:].reshape(b, m), n[b:].reshape(b, m)


def reference_logps_of_negatives(reference, batch: dict) -> torch.Tensor:
    """``(B, m)`` log pi_ref of the negatives, no gradient."""
    b, m, t = batch["neg_input_ids"].shape
    with torch.no_grad():
        lp, _ = answer_logps(reference, batch["neg_input_ids"].reshape(b * m, t), batch["neg_labels"].reshape(b * m, t),
                             batch["neg_attention_mask"].reshape(b * m, t))
    return lp.reshape(b, m)


def greedy_exact_match(model, input_ids, labels, attention_mask) -> torch.Tensor:
    """``(B,)`` 1.0 where greedy decoding from the prompt reproduces the answer exactly.

    One teacher-forced forward suffices: greedy output = answer iff at every answer position the
    argmax given the answer's own prefix is the answer's token (by induction over positions).
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    scored = labels != -100
    hit = (logits.argmax(-1) == labels) | ~scored
    return hit.all(-1).float()


def positives_metrics(model, batch: dict) -> dict:
    """Validation sums on held-out prompts, the same for every objective on ``positives`` data:
    ``loss`` = mean -log pi(y) per answer, ``nll_token`` per answer token, ``exact_match`` of greedy
    decoding, and with a known distractor d: ``margin`` = mean log pi(y) - log pi(d), ``logp_distractor``."""
    lp, n = answer_logps(model, batch["pos_input_ids"], batch["pos_labels"], batch["pos_attention_mask"])
    count = lp.new_tensor(float(lp.numel()))
    em = greedy_exact_match(model, batch["pos_input_ids"], batch["pos_labels"], batch["pos_attention_mask"])
    out = {"loss": (-lp.sum(), count), "nll_token": (-lp.sum(), n.sum()), "exact_match": (em.sum(), count),
           "logp_chosen": (lp.sum(), count)}
    if "distractor_input_ids" in batch:
        lp_d, _ = answer_logps(model, batch["distractor_input_ids"], batch["distractor_labels"],
                               batch["distractor_attention_mask"])
        out["margin"] = ((lp - lp_d).sum(), count)
        out["logp_distractor"] = (lp_d.sum(), count)
    return out
