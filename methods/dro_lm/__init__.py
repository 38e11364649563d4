"""The KL-DRO next-token loss of TempNet (arXiv:2404.04575): ``objective=dro_lm``."""
from methods.dro_lm.config import DroLmConfig
from methods.dro_lm.loss import dro_loss, dro_terms, tempered_forward

__all__ = ["DroLmConfig", "dro_loss", "dro_terms", "tempered_forward"]
