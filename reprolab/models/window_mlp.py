"""A causal LM that is an MLP over a window of one-hot tokens (``model.arch=window_mlp``).

The DFT spec's toy prototype (../shared/papers/dft.md §5.1: "a 2-layer MLP over one-hot prompt + previous answer
tokens"): the logits at position t are

    MLP( [onehot(x_(t)), onehot(x_(t-1)), ..., onehot(x_(t-W+1))] )      (W = ``window`` slots, W * V inputs)

where x_(t-k) is the k-th most recent token at or before t whose attention mask is 1 (slot 0: the token at t
itself); a slot with no such token (before the start) is all zeros. Masked tokens (left padding in batched
sampling, a right-padded prompt continued by its answers) are skipped, not zeros in place: so a padded row
gives the same logits as the row alone, as for a transformer. ``position_ids`` are not used.

The first layer, Linear(W * V, d) over the concatenated one-hots, is stored as ``embed_tokens``, a (V, W * d)
embedding (row v = token v's weights in every slot): the same map, a lookup instead of a product with
mostly zeros, and a key the checkpoint loaders read the vocabulary from. Then ``num_layers - 1`` more
Linear(d, d) layers, each layer followed by a ReLU, and the head Linear(d, V) (``lm_head``).

The "KV cache" is a transformers ``DynamicCache`` whose single layer holds the token ids of past positions as
its keys and their attention mask as its values, ``(B, 1, S, 1)`` long tensors: ``get_seq_length``, ``crop``
and ``batch_repeat_interleave`` work on it unchanged, and ``DynamicCache(config=model.config)`` builds it.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from transformers import PreTrainedConfig
from transformers.modeling_outputs import CausalLMOutputWithPast


class WindowMLPConfig(PreTrainedConfig):
    """What the runners and ``DynamicCache(config=...)`` read: ``vocab_size``, ``hidden_size`` (d) and one cache
    layer (``num_hidden_layers`` = 1: the cache's layer count, not the MLP's; that is ``mlp_layers``)."""

    model_type = "reprolab_window_mlp"

    def __init__(self, vocab_size: int = 9, hidden_size: int = 256, window: int = 8, mlp_layers: int = 2, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.window = window
        self.mlp_layers = mlp_layers
        self.num_hidden_layers = 1
        kwargs.setdefault("use_cache", False)
        super().__init__(**kwargs)


class WindowMLPForCausalLM(nn.Module):
    def __init__(self, config: WindowMLPConfig):
        super().__init__()
        self.config = config
        v, w, d = config.vocab_size, config.window, config.hidden_size
        self.embed_tokens = nn.Embedding(v, w * d)
        self.bias = nn.Parameter(torch.empty(d))
        self.layers = nn.ModuleList(nn.Linear(d, d) for _ in range(config.mlp_layers - 1))
        self.act = nn.ReLU()
        self.lm_head = nn.Linear(d, v)
        bound = 1.0 / math.sqrt(w * v)  # nn.Linear(W * V, d)'s default initialisation
        nn.init.uniform_(self.embed_tokens.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cache=None, use_cache: bool | None = None,
                logits_to_keep: int = 0, **kwargs) -> CausalLMOutputWithPast:
        """``input_ids`` (B, T) after the S tokens ``cache`` holds; ``attention_mask`` (B, S + T), or (B, T) for
        the new tokens alone (the cache's mask for the past), or None (all ones). ``position_ids`` is accepted
        and not used (the window orders tokens by recency). The cache is extended when one is given."""
        for key in ("inputs_embeds", "labels"):
            if kwargs.get(key) is not None:
                raise TypeError(f"{type(self).__name__}.forward takes input_ids, not {key}")
        b, t = input_ids.shape
        past_ids, past_mask = _cached(cache, b, input_ids.device)
        s = past_ids.shape[1]
        new_mask = _new_mask(attention_mask, b, s, t, input_ids.device)
        if attention_mask is not None and attention_mask.shape[1] == s + t:
            past_mask = attention_mask[:, :s].long()
        if cache is not None:
            cache.update(input_ids.long()[:, None, :, None], new_mask[:, None, :, None], 0)
        ids, mask = torch.cat([past_ids, input_ids.long()], 1), torch.cat([past_mask, new_mask], 1).bool()
        hidden = self.act(self._first_layer(ids, mask, s))
        for layer in self.layers:
            hidden = self.act(layer(hidden))
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        return CausalLMOutputWithPast(logits=self.lm_head(hidden), cache=cache)

    def _first_layer(self, ids: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
        """(B, T, d): for each query position q >= ``start`` of the (B, S + T) sequence, bias + the sum over the
        W most recent attended positions p <= q of token x_p's weights in slot rank(q) - rank(p)."""
        w, d = self.config.window, self.config.hidden_size
        rank = mask.long().cumsum(1)                                    # attended tokens up to and including p
        n = ids.shape[1]
        q = torch.arange(start, n, device=ids.device)
        slot = rank[:, start:, None] - rank[:, None, :]                  # (B, T, S + T): q's slot of position p
        before = torch.arange(n, device=ids.device)[None, :] <= q[:, None]
        valid = before[None] & mask[:, None, :] & (slot < w)
        assign = torch.nn.functional.one_hot(slot.clamp(0, w - 1), w).to(self.bias.dtype)
        assign = assign * valid[..., None].to(self.bias.dtype)           # (B, T, S + T, W)
        weights = self.embed_tokens(ids).view(ids.shape[0], n, w, d)     # (B, S + T, W, d)
        return torch.einsum("bqpw,bpwd->bqd", assign, weights) + self.bias


def _cached(cache, b: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), each (B, S), of the tokens ``cache`` holds (S = 0 without one)."""
    empty = torch.zeros(b, 0, dtype=torch.long, device=device)
    if cache is None or cache.get_seq_length() == 0:
        return empty, empty
    layer = cache.layers[0]
    if layer.keys.shape[0] != b:
        raise ValueError(f"the cache holds {layer.keys.shape[0]} rows and input_ids {b}: repeat the cache "
                         "(batch_repeat_interleave) to the batch first")
    return layer.keys[:, 0, :, 0], layer.values[:, 0, :, 0]


def _new_mask(attention_mask, b: int, s: int, t: int, device) -> torch.Tensor:
    """(B, T) long: the new tokens' mask."""
    if attention_mask is None:
        return torch.ones(b, t, dtype=torch.long, device=device)
    if attention_mask.shape[1] not in (t, s + t):
        raise ValueError(f"attention_mask has {attention_mask.shape[1]} columns: give one per token, the {s} cached "
                         f"and the {t} new ones ({s + t}), or the {t} new ones alone")
    return attention_mask[:, -t:].long()


def build(cfg, vocab_size: int) -> WindowMLPForCausalLM:
    """The model of a ``model.arch=window_mlp`` config: d = ``hidden_size``, ``num_layers`` hidden layers,
    ``window`` slots."""
    return WindowMLPForCausalLM(WindowMLPConfig(vocab_size=vocab_size, hidden_size=cfg.hidden_size, window=cfg.window,
                                                mlp_layers=cfg.num_layers))
