"""Assigning converted weights: every shape checked before anything is written."""


class WeightMismatchError(ValueError):
    """The source weights do not fit the model; nothing was assigned."""


def assign_checked(pairs):
    """Assigns every pair after checking all shapes; on a mismatch names the
    first variable and both shapes, and assigns nothing."""
    for variable, value in pairs:
        if tuple(variable.shape) != tuple(value.shape):
            raise WeightMismatchError(
                f"Shape mismatch at {variable.path}: the model has "
                f"{tuple(variable.shape)}, the weights {tuple(value.shape)}. "
                "Nothing was loaded."
            )
    for variable, value in pairs:
        variable.assign(value.astype(variable.dtype))


HEAD = "predictions/"


def assign_from(source, pairs):
    """`assign_checked`, its error prefixed with `source` (a file) and, for the
    classifier, the way to load into another number of classes."""
    try:
        assign_checked(pairs)
    except WeightMismatchError as error:
        hint = (
            " For a new number of classes pass reset_head=True."
            if HEAD in str(error)
            else ""
        )
        raise WeightMismatchError(f"{source}: {error}{hint}") from None
