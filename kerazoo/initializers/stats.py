"""Per-layer activation statistics: does an initialization keep unit variance?"""

import csv
import dataclasses
import os

import keras
import numpy as np


@dataclasses.dataclass
class ActivationStats:
    """Per-layer statistics of a model's outputs on one batch.

    Attributes:
        rows: One dict per layer, in forward order: `depth` (1-based),
            `layer` (name), `class`, `shape` (output shape without the batch),
            `mean` and `std` of the layer's output over the batch and all
            positions, and, when gradients were asked for, `grad_mean` and
            `grad_std` of the loss's gradient with respect to that output.
    """

    rows: list

    def column(self, key):
        """One column as a NumPy array."""
        return np.array([row[key] for row in self.rows], dtype="float64")

    def format(self):
        """The rows as a text table."""
        keys = ["depth", "layer", "class", "shape", "mean", "std"]
        if self.rows and "grad_std" in self.rows[0]:
            keys += ["grad_mean", "grad_std"]
        cells = [keys] + [[_cell(row[k]) for k in keys] for row in self.rows]
        widths = [max(len(line[i]) for line in cells) for i in range(len(keys))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
            for line in cells
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    __str__ = format

    def to_csv(self, path):
        """Writes the rows to a CSV file."""
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        return path

    def plot(self, path, title=None):
        """Writes the standard deviation by depth to a PNG file."""
        return plot_stats({"std": self}, path, title=title)


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _inputs(model):
    """The model's input tensor, or its list of inputs when it has several."""
    inputs = model.inputs
    return inputs[0] if len(inputs) == 1 else inputs


def _layers_with_single_output(model):
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer.output, (list, tuple, dict)):
            continue
        layers.append(layer)
    return layers


def activation_stats(model, x, y=None, loss=None, plot=None):
    """Mean and standard deviation of every layer's output on a batch.

    Runs `x` through `model` in inference mode and reports, per top-level layer
    (a nested model counts as one layer), the mean and standard deviation of
    its output. With `y` and `loss` it also reports the statistics of the
    gradient of the loss with respect to each layer's output (the
    back-propagated signal that Glorot & Bengio follow); that part needs the
    TensorFlow backend.

    Args:
        model: A built functional or Sequential `keras.Model`.
        x: A batch of inputs (large enough for stable statistics, e.g. 1000).
        y: Optional targets, to get gradient statistics.
        loss: The loss for the gradients: a Keras loss name or callable.
        plot: Optional path of a PNG plot of standard deviation by depth.

    Returns:
        An `ActivationStats`; `print(stats)` shows the table.

    Example:

    >>> import keras, numpy as np
    >>> from kerazoo.initializers import HeNormal
    >>> model = keras.Sequential(
    ...     [keras.Input((256,))]
    ...     + [keras.layers.Dense(256, "relu", kernel_initializer=HeNormal())
    ...        for _ in range(10)]
    ... )
    >>> stats = activation_stats(model, np.random.normal(size=(1000, 256)))
    >>> len(stats.rows)
    10
    """
    layers = _layers_with_single_output(model)
    if not layers:
        raise ValueError(f"Model {model.name!r} has no layer with a single output.")
    try:
        probe = keras.Model(_inputs(model), [layer.output for layer in layers])
    except (AttributeError, ValueError) as error:
        raise ValueError(
            "`activation_stats` needs a built functional or Sequential model "
            f"(with an `Input`): {error}"
        ) from None
    x = np.asarray(x)
    gradients = None
    if y is not None or loss is not None:
        if y is None or loss is None:
            raise ValueError("Gradient statistics need both `y` and `loss`.")
        outputs, gradients = _output_gradients(model, probe, layers, x, y, loss)
    else:
        outputs = probe(x, training=False)
    rows = []
    for depth, (layer, output) in enumerate(zip(layers, outputs, strict=True), 1):
        value = keras.ops.convert_to_numpy(output).astype("float64")
        row = {
            "depth": depth,
            "layer": layer.name,
            "class": type(layer).__name__,
            "shape": "x".join(str(d) for d in value.shape[1:]),
            "mean": float(value.mean()),
            "std": float(value.std()),
        }
        if gradients is not None:
            grad = np.asarray(gradients[depth - 1], dtype="float64")
            row["grad_mean"] = float(grad.mean())
            row["grad_std"] = float(grad.std())
        rows.append(row)
    stats = ActivationStats(rows)
    if plot is not None:
        stats.plot(plot)
    return stats


def _output_gradients(model, probe, layers, x, y, loss):
    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError(
            "Gradient statistics need the TensorFlow backend (gradients with "
            "respect to intermediate outputs use tf.GradientTape). Activation "
            f"statistics work on every backend. Backend: {keras.backend.backend()}"
        )
    import tensorflow as tf

    if layers[-1].output is not model.outputs[0] or len(model.outputs) != 1:
        raise ValueError(
            "Gradient statistics need a single-output model whose last layer "
            "produces the output."
        )
    loss_fn = keras.losses.get(loss)
    with tf.GradientTape() as tape:
        outputs = probe(x, training=False)
        value = loss_fn(tf.convert_to_tensor(y), outputs[-1])
        value = tf.reduce_mean(value)
    gradients = tape.gradient(value, outputs)
    return outputs, [g.numpy() for g in gradients]


def plot_stats(stats_by_label, path, key="std", title=None, log=True):
    """Plots one column (default `std`) by depth for several runs, one line each.

    Args:
        stats_by_label: `{label: ActivationStats}`.
        path: The PNG file to write.
        key: The column to plot (`"std"`, `"mean"`, `"grad_std"`, ...).
        title: Optional title.
        log: Log scale on the y axis (vanishing and exploding show best).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, stats in stats_by_label.items():
        axes.plot(
            stats.column("depth"), stats.column(key), marker="o", ms=3, label=label
        )
    axes.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    if log:
        axes.set_yscale("log")
    axes.set_xlabel("depth (layer)")
    axes.set_ylabel(f"output {key}" if key in ("std", "mean") else key)
    axes.set_title(title or f"{key} of each layer's output")
    axes.legend(fontsize=8)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
