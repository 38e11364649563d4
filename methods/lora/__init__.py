"""LoRA, DoRA and AdaLoRA adapters (peft's), as `adapter` plugins: ``LoRA().wrap(model)``."""
from methods.lora.config import AdaLoRAAdapterConfig, DoRAAdapterConfig, LoRAAdapterConfig, PeftAdapterConfig

__all__ = ["LoRAAdapterConfig", "DoRAAdapterConfig", "AdaLoRAAdapterConfig", "PeftAdapterConfig"]
