"""keras-tuner searches of initializer and optimizer choices: `search(recipe)`
and `kerazoo tune RECIPE`."""

from kerazoo.tuning.search import SearchHyperModel
from kerazoo.tuning.search import search

__all__ = ["SearchHyperModel", "search"]
