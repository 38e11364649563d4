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
    """(lp_pos (B,), len_pos, lp_neg (B, m), len_neg): each prompt forwarded once, then its positive and (the
    prompt's keys and values repeated m times, with their gradient) its m negatives after it, each group padded
    to its own longest answer. A DFT step so costs the prompt once and the answers, not 1 + m full sequences;
    the log-probs equal one forward per full sequence (tests/dft)."""
    from transformers import DynamicCache

    b, m, t = batch["neg_labels"].shape
    pos_first, neg_first = _answer_starts(batch["pos_labels"]), _answer_starts(batch["neg_labels"].reshape(b * m, t))
    if (neg_first.view(b, m) != pos_first[:, None]).any():
        raise ValueError("a negative's prompt is not its positive's: the rows of a positives batch must share the "
                         "prompt (methods.dft.data builds them so).")
    prompt_len = pos_first + 1
    tp = int(prompt_len.max())
    prompt_mask = (torch.arange(tp, device=prompt_len.device) < prompt_len[:, None]).long()
    cache = DynamicCache(config=model.config)
    out = model(input_ids=batch["pos_input_ids"][:, :tp] * prompt_mask, attention_mask=prompt_mask, cache=cache,
                use_cache=True)
    first_logp = out.logits[torch.arange(b, device=prompt_len.device), prompt_len - 1].float().log_softmax(-1)
    lp_pos, n_pos = _answers_after(model, cache, prompt_mask, prompt_len, first_logp, batch["pos_labels"], pos_first, 1)
    if cache.get_seq_length() > tp:  # back to the prompts alone (a negative count: tokens to drop)
        cache.crop(tp - cache.get_seq_length())
    lp_neg, n_neg = _answers_after(model, cache, prompt_mask, prompt_len, first_logp,
                                   batch["neg_labels"].reshape(b * m, t), neg_first, m)
    return lp_pos, n_pos, lp_neg.view(b, m), n_neg.view(b, m)


def _answer_starts(labels: torch.Tensor) -> torch.Tensor:
    """``(R,)`` the index of each row's first scored label (= its prompt length - 1)."""
    scored = labels != -100
    if (scored.sum(-1) == 0).any():
        raise ValueError(f"{int((scored.sum(-1) == 0).sum())} answers of the batch have no tokens after masking: raise "
                         "data.max_length or lower data.max_prompt_length so that answers survive.")
    return scored.int().argmax(-1)


def _answers_after(model, cache, prompt_mask, prompt_len, first_logp, labels, first, repeats: int):
    """Summed log-probs and lengths of answer rows (``labels``, prompt-major, ``repeats`` per prompt) continuing the
    prompts held in ``cache`` (repeated in place for them)."""
    t = labels.shape[1]
    lengths = (labels != -100).sum(-1)
    ta = int(lengths.max())
    offsets = torch.arange(ta, device=labels.device)
    answers = labels.gather(1, (first[:, None] + offsets).clamp(max=t - 1))
    answer_mask = offsets < lengths[:, None]
    answers = answers.masked_fill(~answer_mask, 0)
    lp = first_logp.repeat_interleave(repeats, 0).gather(1, answers[:, :1]).squeeze(1)
    if ta > 1:
        if repeats > 1:
            cache.batch_repeat_interleave(repeats)
        mask = torch.cat([prompt_mask.repeat_interleave(repeats, 0), answer_mask[:, :-1].long()], 1)
        positions = prompt_len.repeat_interleave(repeats)[:, None] + offsets[:-1]
        logits = model(input_ids=answers[:, :-1], attention_mask=mask, position_ids=positions, cache=cache,
                       use_cache=True).logits
        targets = answers[:, 1:].masked_fill(~answer_mask[:, 1:], -100)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100, reduction="none")
        lp = lp - nll.view_as(targets).sum(-1)
    return lp, lengths.to(torch.float32)


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
