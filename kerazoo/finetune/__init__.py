"""Two-stage fine-tuning from recipes: `run(recipe)` and `kerazoo finetune`.

Example:

>>> from kerazoo.recipes import load_recipe
>>> from kerazoo.finetune import run
>>> report = run(load_recipe("recipes/quickstart.yaml"))  # doctest: +SKIP
>>> report["test_accuracy"]  # doctest: +SKIP
"""

from kerazoo.finetune.engine import FinetuneError
from kerazoo.finetune.engine import build
from kerazoo.finetune.engine import run
from kerazoo.finetune.engine import scratch_recipe
from kerazoo.finetune.freezing import body_stages
from kerazoo.finetune.freezing import freeze
from kerazoo.finetune.freezing import unfreeze

__all__ = [
    "FinetuneError",
    "body_stages",
    "build",
    "freeze",
    "run",
    "scratch_recipe",
    "unfreeze",
]
