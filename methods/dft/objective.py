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
    """(lp_pos (B,), len_pos, lp_neg (B, m), len_neg): each prompt forwarded once, its 1 + m answers after it.

    The prompt's keys and values (with their gradient) are repeated for its answers
    (``DynamicCache.batch_repeat_interleave``), so a DFT step costs the prompt once and the answers 1 + m
    times, not 1 + m full sequences; the log-probs equal one forward per full sequence (tests/dft).
    """
    from transformers import DynamicCache

    b, m, t = batch["neg_labels"].shape
    labels = torch.cat([batch["pos_labels"][:, None], batch["neg_labels"]], 1).reshape(b * (1 + m), t)  # prompt-major
    scored = labels != -100
    lengths = scored.sum(-1)
    if (lengths == 0).any():
        raise ValueError(f"{int((lengths == 0).sum())} answers of the batch have no tokens after masking: raise "
                         "data.max_length or lower data.max_prompt_length so that answers survive.")
    first = scored.int().argmax(-1)  # where each answer starts in its row: the prompt has first + 1 tokens
    prompt_len = first.view(b, 1 + m)[:, 0] + 1
    if (first.view(b, 1 + m) != first.view(b, 1 + m)[:, :1]).any():
        raise ValueError("a negative's prompt is not its positive's: the rows of a positives batch must share the "
                         "prompt (methods.dft.data builds them so).")
    tp = int(prompt_len.max())
    prompt_mask = (torch.arange(tp, device=labels.device) < prompt_len[:, None]).long()
    cache = DynamicCache(config=model.config)
    out = model(input_ids=batch["pos_input_ids"][:, :tp] * prompt_mask, attention_mask=prompt_mask, cache=cache,
                use_cache=True)
    first_logp = out.logits[torch.arange(b, device=labels.device), prompt_len - 1].float().log_softmax(-1)
    ta = int(lengths.max())
    offsets = torch.arange(ta, device=labels.device)
    answers = labels.gather(1, (first[:, None] + offsets).clamp(max=t - 1))
    answer_mask = offsets < lengths[:, None]
    answers = answers.masked_fill(~answer_mask, 0)
    lp = first_logp.repeat_interleave(1 + m, 0).gather(1, answers[:, :1]).squeeze(1)
    if ta > 1:
        cache.batch_repeat_interleave(1 + m)
        mask = torch.cat([prompt_mask.repeat_interleave(1 + m, 0), answer_mask[:, :-1].long()], 1)
        positions = prompt_len.repeat_interleave(1 + m)[:, None] + offsets[:-1]
        logits = model(input_ids=answers[:, :-1], attention_mask=mask, position_ids=positions, cache=cache,
                       use_cache=True).logits
        targets = answers[:, 1:].masked_fill(~answer_mask[:, 1:], -100)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100, reduction="none")
        lp = lp - nll.view_as(targets).sum(-1)
    lp, n = lp.view(b, 1 + m), lengths.to(torch.float32).view(b, 1 + m)
    return lp[:, 0], n[:, 0], lp[:, 1:], n[:, 1:]


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
