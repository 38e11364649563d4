"""LoRA, DoRA and AdaLoRA adapters (peft's), as `adapter` plugins: ``LoRA().wrap(model)``."""
from methods.lora.config import AdaLoRA, DoRA, LoRA, PeftAdapter

__all__ = ["LoRA", "DoRA", "AdaLoRA", "PeftAdapter"]
