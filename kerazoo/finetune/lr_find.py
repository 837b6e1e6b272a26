"""The learning-rate range test behind `kerazoo lr-find RECIPE` and
`learning_rate: auto`.

A short `fit` whose learning rate grows exponentially from `min_lr` to
`max_lr`, one value per step (`LRRangeTest`, a Keras callback), records each
batch's loss and its running exponential average, and stops early when the
running average diverges (above `diverge` times its lowest value) or a loss is
not finite. The model's weights are put back afterwards.

The running average lags: with a weight of 0.95 on the past, about 19 steps,
a decade of learning rate in a 100-step test. The curve the suggestion reads
(`smooth`) is the same average run forwards and then backwards, which has no
lag. The suggestion (`suggest`) is the learning rate where that smoothed loss
falls fastest: the most negative slope of the smoothed loss against log10(lr), each
slope taken over a tenth of the steps run (one step's is mostly noise), looked
for between the first tenth (the smoothing is still settling there) and the
lowest smoothed loss; the suggestion is the middle of that stretch. When the
lowest smoothed loss comes too early for a stretch, it is the learning rate of
the lowest smoothed loss divided by 10 (never below the lowest rate tried).
Either way it lies inside the range tried.

Reference:
    [Cyclical Learning Rates for Training Neural Networks](
    https://arxiv.org/abs/1506.01186), L. N. Smith, WACV 2017 (section 3.3).

Example:

>>> import keras, numpy as np
>>> model = keras.Sequential(
...     [keras.Input((4,)), keras.layers.Dense(2, activation="softmax")]
... )
>>> data = (np.random.rand(64, 4), np.random.randint(0, 2, 64))
>>> result = range_test(
...     model,
...     data,
...     "sparse_categorical_crossentropy",
...     keras.optimizers.SGD(),
...     steps=20,
...     batch_size=8,
... )
>>> result["min_lr"] <= result["suggestion"] <= result["max_lr"]
True
"""

import json
import math
import pathlib

import keras
import numpy as np

MIN_LR = 1e-6
MAX_LR = 1.0
STEPS = 100
SMOOTHING = 0.95
DIVERGE = 4.0


class LRRangeTest(keras.callbacks.Callback):
    """Drives the optimizer's learning rate from `min_lr` to `max_lr`
    (exponentially, one value per training step) and records the losses.

    Keras's batch logs give the epoch's running mean of the loss, so the
    metrics are reset before each batch: each logged loss is that batch's.

    Args:
        min_lr: The first learning rate.
        max_lr: The learning rate of step `steps` - 1.
        steps: Steps of the test (training stops after them).
        smoothing: Weight of the past in the exponential moving average of
            the loss (bias-corrected).
        diverge: Stop once the smoothed loss exceeds this many times its
            lowest value.

    Attributes:
        learning_rates, losses, smoothed: One entry per step run
            (`smoothed`: the running average, which decides the stop).
        stopped: Why the test ended early (`"diverged"`, `"loss not finite"`),
            or None.
    """

    def __init__(
        self,
        min_lr=MIN_LR,
        max_lr=MAX_LR,
        steps=STEPS,
        smoothing=SMOOTHING,
        diverge=DIVERGE,
    ):
        super().__init__()
        if not 0 < min_lr < max_lr:
            raise ValueError(
                f"0 < min_lr < max_lr is needed. Received: min_lr={min_lr}, "
                f"max_lr={max_lr}"
            )
        if steps < 2:
            raise ValueError(f"steps must be at least 2. Received: steps={steps}")
        if not 0 <= smoothing < 1:
            raise ValueError(
                f"smoothing must be in [0, 1). Received: smoothing={smoothing}"
            )
        if diverge <= 1:
            raise ValueError(f"diverge must be above 1. Received: diverge={diverge}")
        self.min_lr = float(min_lr)
        self.max_lr = float(max_lr)
        self.steps = int(steps)
        self.smoothing = float(smoothing)
        self.diverge = float(diverge)
        self.learning_rates, self.losses, self.smoothed = [], [], []
        self.stopped = None
        self._average = 0.0

    def learning_rate(self, step):
        """The learning rate of step `step` (0-based)."""
        return self.min_lr * (self.max_lr / self.min_lr) ** (step / (self.steps - 1))

    def on_train_begin(self, logs=None):
        self.learning_rates, self.losses, self.smoothed = [], [], []
        self.stopped, self._average = None, 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.learning_rate(len(self.losses))
        self.model.reset_metrics()

    def on_train_batch_end(self, batch, logs=None):
        step = len(self.losses)
        loss = float((logs or {})["loss"])
        self.learning_rates.append(self.learning_rate(step))
        self.losses.append(loss)
        if not math.isfinite(loss):
            self.smoothed.append(math.nan)
            self.stopped = "loss not finite"
            self.model.stop_training = True
            return
        beta = self.smoothing
        self._average = beta * self._average + (1 - beta) * loss
        smoothed = self._average / (1 - beta ** (step + 1))
        self.smoothed.append(smoothed)
        if smoothed > self.diverge * min(self.smoothed):
            self.stopped = "diverged"
            self.model.stop_training = True
        elif step + 1 >= self.steps:
            self.model.stop_training = True


def smooth(losses, smoothing=SMOOTHING):
    """The losses' exponential moving average (bias-corrected) run forwards,
    then backwards over the result: smoothed without lag. A non-finite loss
    (the last one, when the test stopped on it) stays NaN."""
    losses = np.asarray(losses, "float64")
    bad = np.flatnonzero(~np.isfinite(losses))
    finite = int(bad[0]) if len(bad) else len(losses)

    def average(values):
        out, running = np.empty(len(values)), 0.0
        for i, value in enumerate(values):
            running = smoothing * running + (1 - smoothing) * value
            out[i] = running / (1 - smoothing ** (i + 1))
        return out

    smoothed = np.full(len(losses), np.nan)
    if finite:
        smoothed[:finite] = average(average(losses[:finite])[::-1])[::-1]
    return smoothed


def suggest(learning_rates, smoothed):
    """The suggested learning rate, and the rule that gave it (see the module
    docstring).

    Returns:
        `(learning_rate, rule)`, `rule` one of `"steepest descent"` and
        `"minimum / 10"`.
    """
    lrs = np.asarray(learning_rates, "float64")
    loss = np.asarray(smoothed, "float64")
    finite = np.isfinite(loss)
    lrs, loss = lrs[finite], loss[finite]
    if not len(lrs):
        raise ValueError("no finite loss to suggest a learning rate from")
    lowest = int(np.argmin(loss))
    start, span = len(lrs) // 10, max(1, len(lrs) // 10)
    if lowest - start > span:
        # The slope over `span` steps: a single step's is mostly noise.
        x = np.log10(lrs)
        i = np.arange(start, lowest - span + 1)
        slope = (loss[i + span] - loss[i]) / (x[i + span] - x[i])
        return float(lrs[i[np.argmin(slope)] + span // 2]), "steepest descent"
    return float(max(lrs[lowest] / 10, lrs[0])), "minimum / 10"


def range_test(
    model,
    data,
    loss,
    optimizer,
    *,
    min_lr=MIN_LR,
    max_lr=MAX_LR,
    steps=STEPS,
    smoothing=SMOOTHING,
    diverge=DIVERGE,
    batch_size=None,
    class_weight=None,
    log=None,
):
    """Runs the range test on `model` and puts its weights back.

    Args:
        model: The model to train (compiled here with `loss` and `optimizer`).
        data: A `tf.data.Dataset` of training batches (repeated as needed),
            or `(x, y)` arrays with `batch_size`.
        loss: What `compile` takes.
        optimizer: A fresh Keras optimizer with a float learning rate (a
            schedule cannot be driven).
        min_lr, max_lr, steps, smoothing, diverge: See `LRRangeTest`.
        batch_size: For arrays.
        class_weight: Passed to `fit`.
        log: Where the closing line goes, or None.

    Returns:
        A dict: `min_lr`, `max_lr`, `steps`, `steps_run`, `stopped` (None or
        why), `smoothing`, `diverge`, `learning_rates`, `losses`, `running`
        (the running average), `smoothed` (`smooth`), `suggestion` and `rule`.
    """
    callback = LRRangeTest(min_lr, max_lr, steps, smoothing, diverge)
    initial = model.get_weights()
    model.compile(optimizer=optimizer, loss=loss)
    if isinstance(data, tuple):
        fit_data = {"x": data[0], "y": data[1], "batch_size": batch_size}
        # Enough epochs of the arrays for `steps` batches.
        per_epoch = math.ceil(len(data[0]) / (batch_size or 32))
        epochs = math.ceil(steps / per_epoch)
    else:
        fit_data, epochs = {"x": data.repeat(), "steps_per_epoch": steps}, 1
    try:
        model.fit(
            **fit_data,
            epochs=epochs,
            callbacks=[callback],
            verbose=0,
            shuffle=False,
            class_weight=class_weight,
        )
    finally:
        model.set_weights(initial)
    smoothed = smooth(callback.losses, smoothing)
    suggestion, rule = suggest(callback.learning_rates, smoothed)
    result = {
        "min_lr": float(min_lr),
        "max_lr": float(max_lr),
        "steps": int(steps),
        "steps_run": len(callback.losses),
        "stopped": callback.stopped,
        "smoothing": float(smoothing),
        "diverge": float(diverge),
        "learning_rates": callback.learning_rates,
        "losses": callback.losses,
        "running": callback.smoothed,
        "smoothed": smoothed.tolist(),
        "suggestion": suggestion,
        "rule": rule,
    }
    if log is not None:
        log(describe(result))
    return result


def describe(result):
    """One line: the suggestion, its rule and how the test ended."""
    ended = (
        f"stopped after {result['steps_run']} steps ({result['stopped']})"
        if result["stopped"]
        else f"{result['steps_run']} steps"
    )
    return (
        f"lr-find: suggested learning rate {result['suggestion']:.3g} "
        f"({result['rule']} of the smoothed loss; {result['min_lr']:g} to "
        f"{result['max_lr']:g}, {ended})"
    )


def plot(result, path, title=""):
    """Loss against learning rate (log x), raw and smoothed, the suggestion
    marked."""
    # matplotlib only for the figure; Agg writes files without a display.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs, smoothed = np.asarray(result["learning_rates"]), result["smoothed"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(lrs, result["losses"], color="lightgray", lw=1, label="loss")
    ax.plot(lrs, smoothed, color="tab:blue", lw=1.5, label="smoothed loss")
    at = int(np.argmin(np.abs(np.log(lrs) - math.log(result["suggestion"]))))
    ax.axvline(result["suggestion"], color="tab:red", lw=1, ls="--")
    ax.plot(
        [result["suggestion"]],
        [smoothed[at]],
        "o",
        color="tab:red",
        label=f"suggested {result['suggestion']:.3g} ({result['rule']})",
    )
    finite = [v for v in smoothed if math.isfinite(v)]
    if finite:
        # The diverging tail would squash the part worth reading.
        low, high = min(finite), min(max(finite), 4 * min(finite) + 1e-3)
        margin = 0.1 * (high - low) or 0.1
        ax.set_ylim(low - margin, high + margin)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(title or "LR range test")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _json_safe(result):
    """NaN and infinite losses as null (JSON has no NaN)."""

    def safe(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    return {
        key: [safe(v) for v in value] if isinstance(value, list) else safe(value)
        for key, value in result.items()
    }


def write(result, directory, name="lr_find", title=""):
    """Writes `NAME.json` (the result) and `NAME.png` (`plot`) in `directory`.

    Returns:
        `(json path, png path)`.
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data, figure = directory / f"{name}.json", directory / f"{name}.png"
    data.write_text(json.dumps(_json_safe(result), indent=2))
    plot(result, figure, title)
    return data, figure
