"""Next-token cross-entropy: ``objective=next_token`` (the `lm` runner's default objective)."""
from methods.next_token.config import NextTokenConfig
from methods.next_token.loss import next_token_loss

__all__ = ["NextTokenConfig", "next_token_loss"]
