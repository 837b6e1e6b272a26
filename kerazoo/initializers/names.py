"""Initializers by name: `get(name_or_config)` and the names it knows."""

import keras

from kerazoo._checks import unknown_name_error
from kerazoo.api import get_object
from kerazoo.initializers.variance_scaling import HeNormal
from kerazoo.initializers.variance_scaling import HeUniform
from kerazoo.initializers.variance_scaling import LeCunNormal
from kerazoo.initializers.variance_scaling import LeCunUniform
from kerazoo.initializers.variance_scaling import Normal
from kerazoo.initializers.variance_scaling import Uniform
from kerazoo.initializers.variance_scaling import XavierNormal
from kerazoo.initializers.variance_scaling import XavierUniform

NAMES = {
    "xavier_normal": XavierNormal,
    "xavier_uniform": XavierUniform,
    "glorot_normal": XavierNormal,
    "glorot_uniform": XavierUniform,
    "he_normal": HeNormal,
    "he_uniform": HeUniform,
    "lecun_normal": LeCunNormal,
    "lecun_uniform": LeCunUniform,
    "normal": Normal,
    "uniform": Uniform,
}


def get(identifier):
    """Returns a kerazoo initializer from a name, a dict or an initializer.

    Args:
        identifier: One of
            - a name: `"xavier_normal"`, `"xavier_uniform"` (also
              `"glorot_normal"`, `"glorot_uniform"`), `"he_normal"`,
              `"he_uniform"`, `"lecun_normal"`, `"lecun_uniform"`, `"normal"`,
              `"uniform"`; case and `-`/`_` do not matter, and the class names
              (`"HeNormal"`) work too;
            - a dict `{"name": NAME, **arguments}`, e.g.
              `{"name": "normal", "stddev": 0.01, "seed": 1}`;
            - a Keras serialization dict (`{"class_name": ..., "config": ...}`);
            - an initializer instance, returned as it is.

    Example:

    >>> get({"name": "he_uniform", "seed": 3}).distribution
    'uniform'
    """
    return get_object(
        identifier, "initializer", keras.initializers.Initializer, NAMES, _build
    )


def _build(name, **arguments):
    return _resolve(name)(**arguments)


def _resolve(name):
    key = str(name).strip().replace("-", "_")
    # Class names: "HeNormal" -> "he_normal", "LeCunUniform" -> "lecun_uniform".
    for cls in NAMES.values():
        if key == cls.__name__:
            return cls
    key = key.lower()
    if key not in NAMES:
        raise unknown_name_error("initializer", name, NAMES)
    return NAMES[key]
