"""Argument checks shared by kerazoo's optimizers."""

import numbers


def check_learning_rate(learning_rate):
    # Schedules and callables are checked by Keras; plain numbers here.
    if isinstance(learning_rate, numbers.Real) and not learning_rate >= 0:
        raise ValueError(
            "`learning_rate` must be non-negative. "
            f"Received: learning_rate={learning_rate}"
        )


def check_unit_interval(name, value):
    """Checks `value` is in [0, 1)."""
    if not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value}")
    return float(value)


def check_positive(name, value):
    if not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"`{name}` must be positive. Received: {name}={value}")
    return float(value)
