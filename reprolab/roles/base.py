from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Method:
    """Base of every method plugin (see `reprolab.roles`).

    Subclasses are dataclasses; each field is a hyperparameter with its paper default, documented
    in the class docstring. Validate ranges in ``__post_init__`` with `reprolab.checks`, naming the
    key as the user types it (``method.lr``), so a bad value fails before any work starts.
    """

    def hparams(self) -> dict:
        """The hyperparameters as a plain dict (for logging and for optimizer constructors)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
