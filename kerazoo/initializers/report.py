"""`kerazoo init-report`: activation statistics through a deep plain network."""

import csv
import os

import keras
import numpy as np

from kerazoo._checks import check_positive_int
from kerazoo._session import clear_session
from kerazoo.initializers.names import get
from kerazoo.initializers.stats import activation_stats
from kerazoo.initializers.variance_scaling import Normal
from kerazoo.initializers.variance_scaling import Uniform

DEFAULT_INITIALIZERS = ("xavier_normal", "he_normal", "normal:0.01", "normal:1.0")
DEFAULT_ACTIVATIONS = ("tanh", "relu")
# Output range of the bounded activations, for the saturation check.
_BOUNDED = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "softsign": (-1.0, 1.0)}


def parse_initializer(spec, seed=None):
    """An initializer from a CLI spec: a name (`"he_normal"`), or `normal:STD`
    / `uniform:LIMIT` for the fixed distributions."""
    name, _, argument = spec.partition(":")
    if argument:
        try:
            value = float(argument)
        except ValueError:
            raise ValueError(
                f"Initializer spec {spec!r}: {argument!r} is not a number."
            ) from None
        if name == "normal":
            return Normal(0.0, value, seed=seed)
        if name == "uniform":
            return Uniform(-value, value, seed=seed)
        raise ValueError(
            f"Initializer spec {spec!r}: only `normal:STD` and `uniform:LIMIT` "
            "take an argument."
        )
    initializer = get(name)
    config = initializer.get_config()
    config["seed"] = seed
    return type(initializer).from_config(config)


def build_plain_network(depth, width, activation, initializer, seed=0):
    """`depth` Dense layers of `width` units, each followed by an `Activation`
    layer (so that both pre- and post-activation statistics are visible)."""
    check_positive_int("depth", depth)
    check_positive_int("width", width)
    layers = [keras.Input((width,))]
    for i in range(1, depth + 1):
        layers.append(
            keras.layers.Dense(
                width,
                kernel_initializer=parse_initializer(initializer, seed=seed + i),
                name=f"dense_{i}",
            )
        )
        layers.append(keras.layers.Activation(activation, name=f"{activation}_{i}"))
    return keras.Sequential(layers, name=f"plain_{activation}")


def _verdict(pre_std, post, activation):
    growth = (pre_std[-1] / pre_std[0]) ** (1 / max(len(pre_std) - 1, 1))
    if activation in _BOUNDED:
        low, high = _BOUNDED[activation]
        margin = 0.01 * (high - low)
        saturated = float(np.mean((post <= low + margin) | (post >= high - margin)))
        if saturated > 0.5:
            return f"saturates ({saturated:.0%} of units at their bounds)", growth
    if growth < 0.8:
        return f"vanishes (x{growth:.2f} per layer)", growth
    if growth > 1.25:
        return f"explodes (x{growth:.2f} per layer)", growth
    return f"keeps its scale (x{growth:.2f} per layer)", growth


def init_report(
    activations=DEFAULT_ACTIVATIONS,
    initializers=DEFAULT_INITIALIZERS,
    depth=20,
    width=256,
    batch_size=1000,
    seed=0,
    gradients=False,
    output_dir=None,
    verbose=1,
):
    """Per-layer activation statistics of deep plain networks, one per
    (activation, initializer) pair, on unit-variance Gaussian inputs.

    Args:
        activations: Activation names (`"tanh"`, `"relu"`, `"sigmoid"`, ...).
        initializers: Initializer specs: names accepted by
            `kerazoo.initializers.get`, or `normal:STD` / `uniform:LIMIT`.
        depth: Dense layers per network.
        width: Units per layer (and input features).
        batch_size: Examples in the measuring batch.
        seed: Seed of the inputs and of the weights.
        gradients: Also report the statistics of back-propagated gradients
            (mean squared error against random targets; TensorFlow backend).
        output_dir: Where to write `init_report.csv` and `init_report.png`.
        verbose: 1 prints the tables and verdicts.

    Returns:
        A list of dicts, one per network: `activation`, `initializer`,
        `verdict`, `growth` (geometric mean growth of the pre-activation std
        per layer), `first_std`, `last_std`, `stats` (`ActivationStats`).
    """
    check_positive_int("batch_size", batch_size)
    for spec in initializers:  # refuse a bad spec before any work
        parse_initializer(spec)
    for activation in activations:
        try:
            keras.activations.get(activation)
        except ValueError:
            raise ValueError(f"Unknown activation {activation!r}.") from None
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch_size, width)).astype("float32")
    y = rng.normal(size=(batch_size, width)).astype("float32") if gradients else None
    results = []
    for activation in activations:
        for spec in initializers:
            clear_session(free_memory=False)
            model = build_plain_network(depth, width, activation, spec, seed=seed)
            stats = activation_stats(model, x, y=y, loss="mse" if gradients else None)
            pre = [r for r in stats.rows if r["class"] == "Dense"]
            post = [r for r in stats.rows if r["class"] == "Activation"]
            pre_std = np.array([r["std"] for r in pre])
            last = keras.ops.convert_to_numpy(model(x, training=False))
            verdict, growth = _verdict(pre_std, last, activation)
            results.append(
                {
                    "activation": activation,
                    "initializer": spec,
                    "verdict": verdict,
                    "growth": float(growth),
                    "first_std": float(post[0]["std"]),
                    "last_std": float(post[-1]["std"]),
                    "stats": stats,
                }
            )
    if verbose:
        print(format_report(results, depth))
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        csv_path = os.path.join(output_dir, "init_report.csv")
        png_path = os.path.join(output_dir, "init_report.png")
        _write_csv(results, csv_path)
        plot_report(results, png_path)
        if verbose:
            print(f"\nWrote {csv_path} and {png_path}")
    return results


def format_report(results, depth):
    lines = []
    for activation in dict.fromkeys(r["activation"] for r in results):
        group = [r for r in results if r["activation"] == activation]
        lines.append(f"\n{activation}: std of each layer's output (after {activation})")
        header = ["depth"] + [r["initializer"] for r in group]
        table = [header]
        shown = sorted(
            d for d in {1, 2, 3, 5, *range(10, depth + 1, 5), depth} if d <= depth
        )
        for d in shown:
            table.append(
                [str(d)] + [f"{r['stats'].rows[2 * d - 1]['std']:.3g}" for r in group]
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            lines.append(
                "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
            )
        for r in group:
            lines.append(f"  {r['initializer']:>14}: {r['verdict']}")
    return "\n".join(lines)


def _write_csv(results, path):
    with open(path, "w", newline="") as f:
        writer = None
        for result in results:
            for row in result["stats"].rows:
                record = {
                    "activation": result["activation"],
                    "initializer": result["initializer"],
                    **row,
                }
                if writer is None:
                    writer = csv.DictWriter(f, fieldnames=list(record))
                    writer.writeheader()
                writer.writerow(record)


def plot_report(results, path):
    """One panel per activation: output std by depth for each initializer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    activations = list(dict.fromkeys(r["activation"] for r in results))
    figure, axes = plt.subplots(
        1, len(activations), figsize=(5.5 * len(activations), 4.2), squeeze=False
    )
    for axis, activation in zip(axes[0], activations, strict=True):
        for r in results:
            if r["activation"] != activation:
                continue
            rows = [row for row in r["stats"].rows if row["class"] == "Dense"]
            axis.plot(
                [row["depth"] // 2 + 1 for row in rows],
                [row["std"] for row in rows],
                marker="o",
                ms=3,
                label=f"{r['initializer']}: {r['verdict'].split(' (')[0]}",
            )
        axis.axhline(1.0, color="grey", linestyle=":", linewidth=1)
        axis.set_yscale("log")
        axis.set_xlabel("layer")
        axis.set_ylabel("std of pre-activations")
        axis.set_title(f"{activation}")
        axis.legend(fontsize=8)
    figure.suptitle("Activation scale through depth, by initializer")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
