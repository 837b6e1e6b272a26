"""The learning-rate range test (Smith 2017; fastai's `lr_find`)."""

import dataclasses
import math

import numpy as np

from kerazoo._checks import check_positive
from kerazoo._checks import check_positive_int


@dataclasses.dataclass
class LRFindResult:
    """What `lr_find` measured.

    Attributes:
        learning_rates: The rate used at each step (increasing geometrically).
        losses: The training loss of each step's batch.
        smoothed_losses: Exponentially smoothed, bias-corrected losses.
        suggestion: The rate where the smoothed loss falls fastest (steepest
            negative slope against log learning rate, before the minimum):
            a good maximum rate for training or for one-cycle.
        min_loss_learning_rate: The rate at the smoothed loss's minimum;
            a tenth of it is the other common rule of thumb.
        diverged: Whether the test stopped early because the loss blew up.
    """

    learning_rates: list
    losses: list
    smoothed_losses: list
    suggestion: float
    min_loss_learning_rate: float
    diverged: bool

    def pairs(self):
        """`(learning_rate, loss)` pairs, one per step."""
        return list(zip(self.learning_rates, self.losses, strict=True))

    def plot(self, path):
        """Writes loss against learning rate (log scale) to a PNG file (its
        folder is created when missing)."""
        import os

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(6, 4))
        axes.plot(self.learning_rates, self.losses, alpha=0.3, label="loss")
        axes.plot(self.learning_rates, self.smoothed_losses, label="smoothed")
        axes.axvline(
            self.suggestion,
            color="tab:red",
            linestyle="--",
            label=f"suggestion {self.suggestion:.2e}",
        )
        axes.set_xscale("log")
        axes.set_xlabel("learning rate")
        axes.set_ylabel("training loss")
        axes.set_title("Learning-rate range test")
        axes.legend()
        figure.tight_layout()
        os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path


def _batches(x, y, batch_size, seed):
    """Endless (x, y) batches: shuffled slices of arrays, or a dataset cycled."""
    if y is not None or isinstance(x, np.ndarray):
        x = np.asarray(x)
        y = np.asarray(y) if y is not None else None
        size = min(batch_size, len(x))
        rng = np.random.default_rng(seed)
        while True:
            order = rng.permutation(len(x))
            for start in range(0, len(x) - size + 1, size):
                index = order[start : start + size]
                yield x[index], (y[index] if y is not None else None)
    else:
        while True:
            empty = True
            for batch in x:
                empty = False
                if isinstance(batch, (tuple, list)):
                    yield batch[0], (batch[1] if len(batch) > 1 else None)
                else:
                    yield batch, None
            if empty:
                raise ValueError("`x` yielded no batches.")


def _suggest(learning_rates, smoothed):
    log_lr = np.log10(learning_rates)
    lowest = int(np.argmin(smoothed))
    # Ignore the noisy start and everything after the minimum.
    skip = min(len(smoothed) // 10, max(lowest - 1, 0))
    end = max(lowest, skip + 2)
    window = slice(skip, min(end + 1, len(smoothed)))
    if window.stop - window.start < 2:
        return float(learning_rates[lowest])
    slopes = np.gradient(np.asarray(smoothed)[window], log_lr[window])
    return float(learning_rates[window.start + int(np.argmin(slopes))])


def lr_find(
    model,
    x,
    y=None,
    *,
    batch_size=32,
    start_learning_rate=1e-7,
    end_learning_rate=10.0,
    num_steps=100,
    smoothing=0.98,
    divergence_factor=4.0,
    plot=None,
    seed=0,
    verbose=1,
):
    """Runs the learning-rate range test on a compiled model.

    Trains for `num_steps` batches with the learning rate growing geometrically
    from `start_learning_rate` to `end_learning_rate`, records each batch's loss,
    stops early once the smoothed loss exceeds `divergence_factor` times its
    best (or is not finite), and then restores the model's weights and the
    optimizer's state and learning rate exactly: the test leaves no trace.

    Args:
        model: A compiled `keras.Model` whose optimizer has a float learning
            rate (not a schedule).
        x: Input array, or a `tf.data.Dataset` (or any iterable) of
            `(x, y)` batches, cycled as needed.
        y: Target array when `x` is an array.
        batch_size: Batch size when `x` is an array.
        start_learning_rate: First rate tried.
        end_learning_rate: Last rate tried.
        num_steps: Number of steps (rates) to try; a few hundred is typical.
        smoothing: Exponential smoothing factor of the loss, in [0, 1).
        divergence_factor: Stop when the smoothed loss exceeds this multiple of
            the best smoothed loss.
        plot: Optional path of a PNG plot of loss against learning rate.
        seed: Seed of the batch order.
        verbose: 1 prints progress every tenth of the run, 0 is silent.

    Returns:
        An `LRFindResult`; `result.pairs()` gives the `(lr, loss)` pairs and
        `result.suggestion` the suggested rate.

    Example:

    ```python
    model.compile(optimizer=kerazoo.optimizers.SGD(), loss="...")
    result = lr_find(model, x_train, y_train, num_steps=200, plot="lr_find.png")
    print(result.suggestion)
    ```

    Reference:
        Smith, "Cyclical Learning Rates for Training Neural Networks",
        WACV 2017.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(model, "compiled", False):
        raise ValueError("`lr_find` needs a compiled model (call `model.compile`).")
    original_lr = optimizer.learning_rate
    if not hasattr(original_lr, "assign"):
        raise ValueError(
            "`lr_find` sets the learning rate step by step, so the optimizer "
            "needs a float learning rate, not a schedule or a callable."
        )
    start = check_positive("start_learning_rate", start_learning_rate)
    end = check_positive("end_learning_rate", end_learning_rate)
    if end <= start:
        raise ValueError(
            "`end_learning_rate` must exceed `start_learning_rate`. Received: "
            f"start_learning_rate={start}, end_learning_rate={end}"
        )
    num_steps = check_positive_int("num_steps", num_steps)
    if num_steps < 5:
        raise ValueError(f"`num_steps` must be at least 5. Received: {num_steps}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"`smoothing` must be in [0, 1). Received: {smoothing}")

    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    saved_weights = [v.numpy() for v in model.weights]
    saved_optimizer = [v.numpy() for v in optimizer.variables]
    saved_lr = float(np.asarray(original_lr))

    ratio = (end / start) ** (1.0 / (num_steps - 1))
    batches = _batches(x, y, batch_size, seed)
    rates, losses, smoothed = [], [], []
    average, best, diverged = 0.0, math.inf, False
    report_every = max(num_steps // 10, 1)
    try:
        for step in range(num_steps):
            lr = start * ratio**step
            optimizer.learning_rate = lr
            xb, yb = next(batches)
            logs = model.train_on_batch(xb, yb, return_dict=True)
            loss = float(logs["loss"])
            rates.append(lr)
            losses.append(loss)
            average = smoothing * average + (1 - smoothing) * loss
            value = average / (1 - smoothing ** (step + 1))
            smoothed.append(value)
            if verbose and (step + 1) % report_every == 0:
                print(f"lr_find {step + 1}/{num_steps}: lr {lr:.2e} loss {value:.4f}")
            if not math.isfinite(value) or value > divergence_factor * best:
                diverged = True
                if verbose:
                    print(f"lr_find: loss diverged at lr {lr:.2e}; stopping.")
                break
            best = min(best, value)
    finally:
        for variable, value in zip(model.weights, saved_weights, strict=True):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, saved_optimizer, strict=True):
            variable.assign(value)
        optimizer.learning_rate = saved_lr

    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    if len(finite) < 2:
        raise RuntimeError(
            "The loss was not finite from the first steps: lower "
            f"`start_learning_rate` (was {start}). Losses: {losses[:5]}"
        )
    kept = slice(0, finite[-1] + 1)
    lowest = int(np.argmin(smoothed[kept]))
    result = LRFindResult(
        learning_rates=rates,
        losses=losses,
        smoothed_losses=smoothed,
        suggestion=_suggest(np.array(rates[kept]), smoothed[kept]),
        min_loss_learning_rate=float(rates[lowest]),
        diverged=diverged,
    )
    if plot is not None:
        result.plot(plot)
        if verbose:
            print(f"lr_find: plot written to {plot}")
    if verbose:
        print(f"lr_find: suggested learning rate {result.suggestion:.2e}")
    return result
