"""kerazoo's models."""

from kerazoo.models.scoped import ScopedModel
from kerazoo.models.scoped import scoped_model

__all__ = ["ScopedModel", "scoped_model"]
