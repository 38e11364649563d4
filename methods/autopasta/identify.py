"""Stage 1: the model identifies the key sentence of its context.

- ``prompt`` (the paper): the same model, greedy, answers the task's key prompt; the text is mapped to
  context sentences by stage 2 (`methods.autopasta.mapping`).
- ``attention`` (the CPU analog, spec §5.1: a tiny model cannot follow an instruction): the sentence
  with the most attention mass from the last prompt token in one designated head of the model, chosen
  as the head whose choice is most often a gold sentence on the held-out profiling examples.
- ``probe`` (the CPU analog too): the model answers the question from each context sentence alone (the
  task's ``sentence_prompt``; short, so within the lengths it was trained on) and the key sentence is the
  one whose first answer token it is most confident about (highest top-1 probability).
"""
from __future__ import annotations

import torch


@torch.no_grad()
def last_row_attention(model, prompts: list[list[int]], pad: int, device) -> tuple[torch.Tensor, int]:
    """Unsteered attention of the last prompt token, ``(batch, layers, heads, width)`` for the left-padded
    prompts (and ``width``), computed with eager attention (the only one that returns probabilities)."""
    from runners.generate.decode import left_pad

    ids, mask = left_pad(prompts, pad, device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    name = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_attentions=True)
    finally:
        model.set_attn_implementation(name)
    return torch.stack([a[:, :, -1].float() for a in out.attentions], 1), ids.shape[1]


def sentence_mass(attn: torch.Tensor, width: int, prompt_len: int, spans) -> torch.Tensor:
    """Attention mass on each sentence, ``(layers, heads, sentences)``, from one example's ``(layers, heads,
    width)`` row."""
    off = width - prompt_len
    return torch.stack([attn[..., off + a : off + b].sum(-1) for a, b in spans], -1)


def attention_choice(model, batch: list, pad: int, device, layer: int, head: int) -> list[int]:
    """The sentence each example's designated head attends to most."""
    attn, width = last_row_attention(model, [e.prompt for e in batch], pad, device)
    return [int(sentence_mass(attn[b], width, len(e.prompt), e.meta["sentences"])[layer, head].argmax())
            for b, e in enumerate(batch)]


def best_identify_head(model, examples: list, pad: int, device, batch_size: int) -> tuple[list[int], float]:
    """``([layer, head], precision)`` of the head whose most-attended sentence is most often gold on ``examples``."""
    hits = None
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        attn, width = last_row_attention(model, [e.prompt for e in chunk], pad, device)
        for b, e in enumerate(chunk):
            choice = sentence_mass(attn[b], width, len(e.prompt), e.meta["sentences"]).argmax(-1)  # (layers, heads)
            gold = torch.zeros_like(choice, dtype=torch.bool)
            for g in e.meta["gold"]:
                gold |= choice == g
            hits = gold.float() if hits is None else hits + gold.float()
    flat = int(hits.flatten().argmax())
    layer, head = divmod(flat, hits.shape[1])
    return [layer, head], float(hits[layer, head]) / len(examples)


@torch.no_grad()
def probe_choice(model, task, tokenizer, batch: list, pad: int, device, batch_size: int) -> list[int]:
    """The sentence of each example from which the model answers most confidently on its own."""
    from runners.generate.decode import left_pad

    prompts, owner = [], []
    for b, e in enumerate(batch):
        for i in range(len(e.meta["sentences"])):
            prompts.append(task.sentence_prompt(tokenizer, e, i))
            owner.append(b)
    conf = []
    for i in range(0, len(prompts), batch_size):
        ids, mask = left_pad(prompts[i : i + batch_size], pad, device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1].float()
        conf += logits.softmax(-1).max(-1).values.tolist()
    best: dict[int, tuple[float, int]] = {}
    count: dict[int, int] = {}
    for b, c in zip(owner, conf):
        i = count.get(b, 0)
        count[b] = i + 1
        if b not in best or c > best[b][0]:
            best[b] = (c, i)
    return [best[b][1] for b in range(len(batch))]
