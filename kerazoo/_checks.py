"""Argument checks shared by every kerazoo package.

Each raises `ValueError` naming the argument and the received value, so that bad
input is refused at construction, never deep inside a backend op.
"""

import difflib
import numbers


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        expected = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return value


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}"
        )
    return value


def check_fraction(name, value, low_inclusive=True, high_inclusive=False):
    """Checks `value` lies in [0, 1) (or the interval the flags say)."""
    ok = (
        _is_number(value)
        and (value >= 0 if low_inclusive else value > 0)
        and (value <= 1 if high_inclusive else value < 1)
    )
    if not ok:
        interval = (
            ("[" if low_inclusive else "(") + "0, 1" + ("]" if high_inclusive else ")")
        )
        raise ValueError(
            f"`{name}` must be a number in {interval}. Received: {name}={value!r}"
        )
    return float(value)


def check_positive(name, value):
    if not (_is_number(value) and value > 0):
        raise ValueError(f"`{name}` must be positive. Received: {name}={value!r}")
    return float(value)


def check_non_negative(name, value):
    if not (_is_number(value) and value >= 0):
        raise ValueError(f"`{name}` must be non-negative. Received: {name}={value!r}")
    return float(value)


def check_learning_rate(learning_rate):
    # Schedules and callables are Keras's to check; plain numbers are checked here.
    if _is_number(learning_rate):
        check_non_negative("learning_rate", learning_rate)


def did_you_mean(name, valid, n=3, cutoff=0.5):
    """`" Did you mean 'a', 'b'?"` for the names of `valid` closest to `name`
    (at most `n`), or `""` when none is close: the one suggestion helper of
    kerazoo's errors."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n, cutoff)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def unknown_name_error(kind, name, valid, listing=None):
    """A `ValueError` for an unknown `kind` name, suggesting the closest valid
    names; `listing` replaces the list of all names (for long lists)."""
    listing = listing or f"Valid names: {', '.join(valid)}."
    return ValueError(f"Unknown {kind} {name!r}.{did_you_mean(name, valid)} {listing}")


def parse_overrides(pairs):
    """`--set key.path=value` strings as `[(("key", "path"), value), ...]`, the
    values read as YAML (`3`, `0.1`, `[1, 2]`, `null`; an empty value is None):
    the one `--set` parser of recipes and experiments. Raises `ValueError`
    naming a string that is not `key.path=value`."""
    import yaml  # Only the command line's overrides need it.

    parsed = []
    for pair in pairs or ():
        key, sep, text = str(pair).partition("=")
        path = tuple(part.strip() for part in key.split("."))
        if not sep or not all(path):
            raise ValueError(
                "--set expects key.path=value (e.g. stage2.epochs=3). "
                f"Received: {pair!r}"
            )
        parsed.append((path, yaml.safe_load(text) if text.strip() else None))
    return parsed
