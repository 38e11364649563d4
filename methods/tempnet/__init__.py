"""TempNet (arXiv:2404.04575): ``temperature=tempnet`` (LLMs, `TempNet`) and ``temperature=tempnet_clip``
(`ContrastiveTempNet`, two `TempGenerator` heads); the DRO losses are the objectives ``dro_lm`` and ``isogclr``."""
from methods.tempnet.config import TempNetConfig
from methods.tempnet.module import ContrastiveTempNet, TempGenerator, TempNet

__all__ = ["TempNetConfig", "TempNet", "TempGenerator", "ContrastiveTempNet"]
