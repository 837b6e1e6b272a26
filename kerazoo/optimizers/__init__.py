"""kerazoo's optimizers, written from the lecture's formulas with `keras.ops`.

Each is a `keras.optimizers.Optimizer` subclass overriding only `build`,
`update_step` and `get_config`, so the base-class features (`weight_decay`,
gradient clipping, EMA, gradient accumulation, loss scaling) keep working. All of
them take `lr_multipliers` (discriminative learning rates by variable path) and
`skip_nonfinite` (a NaN/Inf gradient skips its variable's update and is counted
in `optimizer.nonfinite_updates`); see `kerazoo.optimizers.Optimizer`.

Also here: `schedules` (warmup + cosine, one-cycle, step decay), `lr_find` (the
learning-rate range test) and `batch_size_for` (the lecture's per-example,
mini-batch and full-batch regimes).
"""

import inspect

import keras

from kerazoo._checks import unknown_name_error
from kerazoo.api import get_object
from kerazoo.optimizers import schedules
from kerazoo.optimizers.adagrad import AdaGrad
from kerazoo.optimizers.adam import Adam
from kerazoo.optimizers.adamw import AdamW
from kerazoo.optimizers.base import Optimizer
from kerazoo.optimizers.batching import BATCHING
from kerazoo.optimizers.batching import batch_size_for
from kerazoo.optimizers.batching import steps_per_epoch
from kerazoo.optimizers.lr_find import LRFindResult
from kerazoo.optimizers.lr_find import lr_find
from kerazoo.optimizers.rmsprop import RMSProp
from kerazoo.optimizers.sgd import SGD

__all__ = [
    "BATCHING",
    "NAMES",
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "LRFindResult",
    "Optimizer",
    "RMSProp",
    "arguments",
    "batch_size_for",
    "get",
    "lr_find",
    "schedules",
    "steps_per_epoch",
]

# Name -> (class, default arguments that the name implies).
_NAMES = {
    "sgd": (SGD, {}),
    "momentum": (SGD, {"momentum": 0.9}),
    "nesterov": (SGD, {"momentum": 0.9, "nesterov": True}),
    "rmsprop": (RMSProp, {}),
    "adam": (Adam, {}),
    "adamw": (AdamW, {}),
    "adagrad": (AdaGrad, {}),
}

# The names that `get` takes.
NAMES = tuple(_NAMES)


def _resolve(name):
    key = str(name).lower()
    if key not in _NAMES:
        raise unknown_name_error("optimizer", name, _NAMES)
    return _NAMES[key]


def arguments(name):
    """`{argument: default}` of every keyword argument that the optimizer
    `name` takes (its class's and its base classes', down to
    `keras.optimizers.Optimizer`'s `weight_decay`, clipping, EMA, ...), with
    the defaults that the name implies (`"momentum"`: momentum 0.9). `name`
    itself is left out: in a recipe or a dict it is the kerazoo name.

    `kerazoo/catalog.json` records these for every name, so that a recipe's
    optimizer arguments are checked without importing Keras.

    Example:

    >>> arguments("nesterov")["nesterov"]
    True
    """
    cls, implied = _resolve(name)
    found = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())
        for p in parameters[1:]:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                found.setdefault(p.name, None if p.default is p.empty else p.default)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    found.pop("name", None)
    return {**found, **implied}


def get(identifier):
    """Returns a kerazoo optimizer from a name, a dict or an optimizer.

    Args:
        identifier: One of
            - a name: `"sgd"`, `"momentum"` (SGD, momentum 0.9), `"nesterov"` (SGD,
              Nesterov momentum 0.9), `"rmsprop"`, `"adam"`, `"adamw"`,
              `"adagrad"`;
            - a dict `{"name": NAME, **arguments}`, e.g.
              `{"name": "nesterov", "learning_rate": 0.05, "momentum": 0.95}`;
            - a Keras serialization dict (`{"class_name": ..., "config": ...}`);
            - an optimizer instance, returned as it is.

    Returns:
        A new `keras.optimizers.Optimizer` (or the instance given).

    Example:

    >>> get({"name": "momentum", "learning_rate": 0.1}).momentum
    0.9
    """
    return get_object(
        identifier, "optimizer", keras.optimizers.Optimizer, _NAMES, _build
    )


def _build(name, **arguments):
    cls, defaults = _resolve(name)
    return cls(**{**defaults, **arguments})
