"""Contrastive dual encoders (CLIP-style): two towers, each ending in a linear projection to a shared
``embed_dim`` and an L2 normalisation. ``forward(batch)`` -> (image embeddings, text embeddings)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reprolab.checks import ConfigError


def mlp(sizes: list[int]) -> nn.Sequential:
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no activation after the projection


class DualEncoder(nn.Module):
    """Two towers over a contrastive batch: ``image_tower(batch) -> (B, d_i)``, ``text_tower(batch) -> (B, d_t)``,
    each projected to ``embed_dim`` and normalised."""

    def __init__(self, image_tower: nn.Module, text_tower: nn.Module, embed_dim: int):
        super().__init__()
        self.image_tower, self.text_tower, self.embed_dim = image_tower, text_tower, embed_dim

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return F.normalize(self.image_tower(batch), dim=-1), F.normalize(self.text_tower(batch), dim=-1)


class FeatureTower(nn.Module):
    """An MLP over a feature vector ``batch[key]`` (the synthetic analog's "image" or "text")."""

    def __init__(self, key: str, sizes: list[int]):
        super().__init__()
        self.key, self.net = key, mlp(sizes)

    def forward(self, batch: dict) -> torch.Tensor:
        x = batch[self.key]
        if x.shape[-1] != self.net[0].in_features:
            raise ConfigError(f"the {self.key} tower takes {self.net[0].in_features} features and the data has "
                              f"{x.shape[-1]}: set model.{self.key}_dim={x.shape[-1]}.")
        return self.net(x)


def mlp_dual_encoder(cfg) -> DualEncoder:
    """`reprolab.models.config.ClipMLP`: two MLPs (ReLU) ending in a projection to embed_dim."""
    hidden = list(cfg.hidden_sizes)
    return DualEncoder(FeatureTower("image", [cfg.image_dim, *hidden, cfg.embed_dim]),
                       FeatureTower("text", [cfg.text_dim, *hidden, cfg.embed_dim]), cfg.embed_dim)


class HFImageTower(nn.Module):
    """A transformers vision backbone's pooled output (``batch["pixel_values"]``) -> a linear projection."""

    def __init__(self, backbone: nn.Module, width: int, embed_dim: int):
        super().__init__()
        self.backbone, self.proj = backbone, nn.Linear(width, embed_dim)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.proj(self.backbone(pixel_values=batch["pixel_values"]).pooler_output.flatten(1))


class HFTextTower(nn.Module):
    """A transformers text encoder's first-token state (``batch["input_ids"]``, ``attention_mask``) -> a projection."""

    def __init__(self, backbone: nn.Module, width: int, embed_dim: int):
        super().__init__()
        self.backbone, self.proj = backbone, nn.Linear(width, embed_dim)

    def forward(self, batch: dict) -> torch.Tensor:
        out = self.backbone(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"))
        return self.proj(out.last_hidden_state[:, 0])


def rn50_distilbert(cfg) -> DualEncoder:
    """`reprolab.models.config.ClipRN50DistilBert`: transformers ``ResNetModel`` (``microsoft/resnet-50``) and
    ``DistilBertModel`` (``distilbert-base-uncased``), each with a linear projection to embed_dim (spec §2.5:
    the official code uses timm's ImageNet ResNet-50 and the same DistilBERT, embed dim 256)."""
    from transformers import DistilBertConfig, DistilBertModel, ResNetConfig, ResNetModel

    if cfg.pretrained:
        image = ResNetModel.from_pretrained(cfg.image_hf_id)
        text = DistilBertModel.from_pretrained(cfg.text_hf_id)
    else:  # random init at the given sizes (tests; a from-scratch run)
        image = ResNetModel(ResNetConfig(embedding_size=cfg.image_width // 32, hidden_sizes=[cfg.image_width // 8, cfg.image_width // 4, cfg.image_width // 2, cfg.image_width],
                                         depths=list(cfg.image_depths), layer_type="bottleneck"))
        text = DistilBertModel(DistilBertConfig(dim=cfg.text_width, hidden_dim=4 * cfg.text_width, n_layers=cfg.text_layers,
                                                n_heads=cfg.text_heads, vocab_size=cfg.text_vocab))
    return DualEncoder(HFImageTower(image, image.config.hidden_sizes[-1], cfg.embed_dim),
                       HFTextTower(text, text.config.dim, cfg.embed_dim), cfg.embed_dim)
