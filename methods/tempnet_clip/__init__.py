"""TempNet for CLIP (one tau per image and per text): ``temperature=tempnet_clip``."""
from methods.tempnet_clip.config import TempNetClipConfig

__all__ = ["TempNetClipConfig"]
