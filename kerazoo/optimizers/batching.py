"""The lecture's three regimes of gradient descent, as one choice.

- `"example"`: stochastic gradient descent proper, one update per training
  example (batch size 1, examples shuffled each epoch);
- `"minibatch"`: one update per mini-batch of `batch_size` examples;
- `"full"`: full-batch (plain) gradient descent, one update per pass over the
  whole training set, with the exact mean gradient.

Everything in kerazoo that trains takes `batching` and resolves it with
`batch_size_for`.
"""

from kerazoo._checks import check_choice
from kerazoo._checks import check_positive_int

BATCHING = ("example", "minibatch", "full")


def batch_size_for(batching, num_examples, batch_size=32):
    """The batch size that realises a batching regime.

    Args:
        batching: `"example"`, `"minibatch"` or `"full"`.
        num_examples: Size of the training set.
        batch_size: The mini-batch size, used by `"minibatch"` only.

    Returns:
        1 for `"example"`, `min(batch_size, num_examples)` for `"minibatch"`,
        `num_examples` for `"full"`.

    Example:

    >>> batch_size_for("full", 1000)
    1000
    >>> batch_size_for("example", 1000)
    1
    """
    check_choice("batching", batching, BATCHING)
    check_positive_int("num_examples", num_examples)
    if batching == "example":
        return 1
    if batching == "full":
        return num_examples
    return min(check_positive_int("batch_size", batch_size), num_examples)


def steps_per_epoch(batching, num_examples, batch_size=32):
    """Optimizer updates per pass over the data under a batching regime."""
    size = batch_size_for(batching, num_examples, batch_size)
    return -(-num_examples // size)
