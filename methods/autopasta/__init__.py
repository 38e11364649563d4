"""AutoPASTA (arXiv:2409.10790): the model identifies the key sentence, which is mapped back to the
context and steered by PASTA. ``steering=autopasta``; see `methods.autopasta.config`."""
from methods.autopasta.config import AutoPASTAConfig
from methods.autopasta.mapping import map_to_sentences
from methods.autopasta.profile import Profile, coarse_to_fine

__all__ = ["AutoPASTAConfig", "Profile", "coarse_to_fine", "map_to_sentences"]
