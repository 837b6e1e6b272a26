"""Weight EMA for a fine-tuning stage: the stage's `ema: {decay, start_epoch}`.

The average itself is Keras's: the stage's optimizer is built with
`use_ema=True, ema_momentum=decay`, so after every step it updates
`average = decay * average + (1 - decay) * weights` for each trainable
variable (its optimizer variables, so the epoch backup keeps them and a
resumed stage goes on with the same average). `WeightEMA`, a callback, makes
that average the stage's result:

- validation runs on the averaged weights (swapped in when Keras starts the
  validation pass, the raw ones put back when it ends), so each epoch's
  `val_*` numbers, the best-epoch choice and early stopping are the average's;
- the best-epoch checkpoint is written with the averaged weights swapped in
  (`WeightEMA.averaged()`), and `fit` ends with them (Keras's
  `finalize_variable_values`), so the stage's final weights, `model.keras`
  and the export are the average's;
- before `start_epoch` (counted from 0) the average follows the weights: it
  is reset to them when each of those epochs begins and ends, and validation
  sees the raw weights. The average starts from the weights as they are when
  epoch `start_epoch` begins.

Training itself (the gradient steps, the training loss and accuracy in the
history) is on the raw weights, which the average never feeds back into.

Batch-norm moving statistics are not trainable variables and are not
averaged: the averaged weights are evaluated with the moving mean and
variance the layers hold, which are themselves running averages of recent
batches (momentum 0.99, about 100 steps). Frozen batch norms (stage 2's
default with pretrained weights) keep their pretrained statistics, which the
average does not touch.
"""

import contextlib

import keras

from kerazoo import _compat


def optimizer_options(spec):
    """The optimizer arguments that make it keep the average of `spec` (a
    recipe's `ema` section), or `{}` when `spec` is None."""
    if spec is None:
        return {}
    return {"use_ema": True, "ema_momentum": float(spec.decay)}


def window(decay):
    """About how many steps the average spans: `1 / (1 - decay)`."""
    return 1.0 / (1.0 - decay)


def describe(spec, steps_per_epoch, epochs):
    """What the log says of a stage's EMA, with a warning when the average
    spans more steps than it runs (it then stays close to the weights it
    started from)."""
    steps = steps_per_epoch * max(0, epochs - spec.start_epoch)
    text = (
        f"EMA of the weights (decay {spec.decay:g}, about {window(spec.decay):,.0f} "
        f"steps) from epoch {spec.start_epoch + 1}, used for validation and the "
        "stage's weights"
    )
    if window(spec.decay) > steps:
        text += (
            f"; note: it averages only {steps:,} steps, fewer than it spans, so it "
            f"stays near the weights of epoch {spec.start_epoch + 1}'s start (a "
            "lower decay follows training more closely)"
        )
    return text


class WeightEMA(keras.callbacks.Callback):
    """Validates and ends a `fit` with the optimizer's moving average of the
    weights (`use_ema=True`); see the module's docstring.

    Put it before any callback that saves the model in `on_epoch_end` (the
    epoch backup): for an epoch before `start_epoch` it resets the average
    there, so that the backup and the weights `fit` ends with hold the raw
    weights.

    Args:
        start_epoch: The epoch (from 0) whose beginning starts the average;
            earlier epochs validate and keep the raw weights.

    Example:

    >>> ema = WeightEMA(start_epoch=1)
    >>> optimizer = keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.99)
    >>> # model.compile(optimizer, ...); model.fit(..., callbacks=[ema])
    """

    def __init__(self, start_epoch=0):
        super().__init__()
        if not isinstance(start_epoch, int) or start_epoch < 0:
            raise ValueError(
                f"start_epoch must be an integer >= 0. Received: "
                f"start_epoch={start_epoch!r}"
            )
        self.start_epoch = start_epoch
        self.epoch = None
        self._raw = None

    def _pairs(self):
        optimizer = self.model.optimizer
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        return [(v, a) for v, a in _compat.ema_averages(optimizer) if a is not None]

    @property
    def active(self):
        """Whether the epoch under way (or just ended) is averaged."""
        return self.epoch is not None and self.epoch >= self.start_epoch

    def reset(self):
        """Sets the average to the current weights."""
        for variable, average in self._pairs():
            average.assign(variable.value)

    def swap_in(self):
        """Puts the averaged weights in the model, keeping the raw ones."""
        if self._raw is not None:
            raise RuntimeError("the averaged weights are already swapped in")
        pairs = self._pairs()
        self._raw = [keras.ops.copy(variable.value) for variable, _ in pairs]
        for variable, average in pairs:
            variable.assign(average.value)

    def swap_out(self):
        """Puts the raw weights back."""
        if self._raw is None:
            return
        for (variable, _), raw in zip(self._pairs(), self._raw, strict=True):
            variable.assign(raw)
        self._raw = None

    @contextlib.contextmanager
    def averaged(self):
        """Within this, the model holds the averaged weights when the epoch is
        averaged (else its raw ones); the raw ones come back after."""
        if not self.active or self._raw is not None:
            yield
            return
        self.swap_in()
        try:
            yield
        finally:
            self.swap_out()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if epoch <= self.start_epoch:
            self.reset()

    def on_test_begin(self, logs=None):
        # Only fit's validation: evaluate() outside fit sees no epoch.
        if self.active:
            self.swap_in()

    def on_test_end(self, logs=None):
        self.swap_out()

    def on_epoch_end(self, epoch, logs=None):
        self.swap_out()
        if epoch < self.start_epoch:
            self.reset()
