"""The CLIP contrastive loss with a fixed temperature: ``objective=clip``."""
from methods.clip_loss.config import ClipLossConfig

__all__ = ["ClipLossConfig"]
