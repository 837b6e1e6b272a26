"""Assigning converted weights: every shape checked before anything is written."""


class WeightMismatchError(ValueError):
    """The source weights do not fit the model; nothing was assigned."""


HEAD = "predictions/"


def first_mismatch(pairs):
    """The first `(variable, value)` pair whose shapes differ, or None."""
    for variable, value in pairs:
        if tuple(variable.shape) != tuple(value.shape):
            return variable, value
    return None


def _mismatch_message(variable, value):
    return (
        f"Shape mismatch at {variable.path}: the model has "
        f"{tuple(variable.shape)}, the weights {tuple(value.shape)}. "
        "Nothing was loaded."
    )


def _assign(pairs):
    for variable, value in pairs:
        variable.assign(value.astype(variable.dtype))


def assign_checked(pairs):
    """Assigns every pair after checking all shapes; on a mismatch names the
    first variable and both shapes, and assigns nothing."""
    mismatch = first_mismatch(pairs)
    if mismatch is not None:
        raise WeightMismatchError(_mismatch_message(*mismatch))
    _assign(pairs)


def assign_from(source, pairs):
    """`assign_checked`, its error prefixed with `source` (a file) and, when
    the mismatch is the classifier's, the way to load into another number of
    classes."""
    mismatch = first_mismatch(pairs)
    if mismatch is not None:
        variable, _ = mismatch
        hint = (
            " For a new number of classes pass reset_head=True."
            if variable.path.startswith(HEAD)
            else ""
        )
        raise WeightMismatchError(f"{source}: {_mismatch_message(*mismatch)}{hint}")
    _assign(pairs)
