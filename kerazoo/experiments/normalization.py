"""Normalization: the same small convolutional network with and without batch
norm (training loss against steps); then batch norm against group, layer and
instance norm at batch sizes 1, 2 and 32 (accuracy after equal epochs)."""

import numpy as np

from kerazoo.experiments._common import digits
from kerazoo.experiments._common import fit_and_test
from kerazoo.experiments._common import loss_per_step
from kerazoo.experiments._common import pyplot

NORMS = ("batch", "group", "layer", "instance")


def _norm_layer(kind, groups, momentum):
    import keras

    from kerazoo import layers

    if kind == "none":
        return keras.layers.Identity()
    if kind == "batch":
        return layers.BatchNormalization(momentum=momentum)
    if kind == "group":
        return layers.GroupNormalization(groups=groups)
    if kind == "layer":
        return layers.LayerNormalization(axis=[1, 2, 3])
    return layers.InstanceNormalization()


def build_network(norm, width, groups, seed, momentum=0.9):
    """Conv-Norm-ReLU x3 (one 2x2 pooling), global pooling, a linear
    classifier: 8x8 grayscale in, 10 logits out."""
    import keras

    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((8, 8, 1))
    for i, filters in enumerate((width, width, 2 * width)):
        if i == 2:
            x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=norm == "none")(x)
        x = _norm_layer(norm, groups, momentum)(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=f"net_{norm}")


def _fit(model, optimizer, data, batch_size, epochs, steps=None, seed=0):
    """Trains for `epochs` epochs, or for `steps` updates on batches drawn at
    random from the whole training set (so that every batch size gets the same
    number of updates)."""
    x, y = data["train"]
    if steps:
        pick = np.random.default_rng(seed).integers(0, len(y), steps * batch_size)
        x, y, epochs = x[pick], y[pick], 1
    history = loss_per_step()
    out = fit_and_test(
        model,
        optimizer,
        (x, y),
        batch_size=batch_size,
        epochs=epochs,
        test=data["test"],
        callbacks=[history],
    )
    return {
        "step_loss": history.losses,
        "test_accuracy": out["test_accuracy"],
        "seconds": out["seconds"],
    }


def run(run, s):
    from kerazoo import optimizers

    data = digits(seed=s["seed"])
    run.log(
        f"\n1. With and without batch norm: SGD momentum lr {s['learning_rate']}, "
        f"batch {s['batch_size']}, {s['epochs']} epochs"
    )
    with_without = {}
    for norm in ("none", "batch"):
        model = build_network(norm, s["width"], s["groups"], s["seed"])
        with_without[norm] = _fit(
            model,
            optimizers.SGD(s["learning_rate"], momentum=0.9),
            data,
            s["batch_size"],
            s["epochs"],
        )
        r = with_without[norm]
        run.log(
            f"  {'batch norm' if norm == 'batch' else 'no norm':10s}: last-epoch loss "
            f"{_tail(r['step_loss']):.4f}, test accuracy {r['test_accuracy']:.4f}"
        )
    steps_per_epoch = int(np.ceil(len(data["train"][1]) / s["batch_size"]))
    target = s["loss_target"]
    reach = {
        k: _steps_to(v["step_loss"], target, steps_per_epoch)
        for k, v in with_without.items()
    }
    run.record(
        "with_without",
        {
            k: {"step_loss": v["step_loss"], "test_accuracy": v["test_accuracy"]}
            for k, v in with_without.items()
        },
    )
    run.record("steps_to_loss_target", reach)
    none_steps = (
        reach["none"]
        if reach["none"] is not None
        else f">{len(with_without['none']['step_loss'])}"
    )
    run.verdict(
        "batch norm speeds up learning (same network, optimizer and learning rate)",
        reach["batch"] is not None
        and (reach["none"] is None or reach["batch"] < reach["none"]),
        f"steps until the smoothed training loss is below {target:g}: batch norm "
        f"{reach['batch']}, no norm {none_steps}",
    )

    run.log(
        f"\n2. Batch vs group/layer/instance norm at batch sizes "
        f"{', '.join(map(str, s['batch_sizes']))} (Adam lr {s['adam_lr']}, "
        f"{s['sweep_steps']} updates each, batches drawn from all training images)"
    )
    sweep = {}
    rows = []
    for norm in NORMS:
        for batch_size in s["batch_sizes"]:
            model = build_network(norm, s["width"], s["groups"], s["seed"])
            r = _fit(
                model,
                optimizers.Adam(s["adam_lr"]),
                data,
                batch_size,
                None,
                steps=s["sweep_steps"],
                seed=s["seed"],
            )
            sweep[(norm, batch_size)] = r["test_accuracy"]
            rows.append(
                {
                    "norm": norm,
                    "batch_size": batch_size,
                    "test_accuracy": r["test_accuracy"],
                    "seconds": round(r["seconds"], 2),
                }
            )
            run.log(
                f"  {norm:8s} batch {batch_size:3d}: test accuracy "
                f"{r['test_accuracy']:.4f} ({r['seconds']:.1f} s)"
            )
    run.write_csv("batch_size_sweep.csv", rows)
    run.record("batch_size_sweep", rows)
    small, large = min(s["batch_sizes"]), max(s["batch_sizes"])
    inst_small, bn_small = sweep[("instance", small)], sweep[("batch", small)]
    run.record("instance_minus_batch_at_smallest", inst_small - bn_small)
    run.verdict(
        f"batch norm fails at batch size {small}: it trains like instance norm "
        "(one image's statistics) but tests on running statistics",
        inst_small - bn_small > 0.1 and sweep[("batch", large)] > bn_small + 0.1,
        f"test accuracy at batch {small}: batch norm {bn_small:.3f}, instance norm "
        f"{inst_small:.3f}; at batch {large}: batch norm "
        f"{sweep[('batch', large)]:.3f}. All: "
        + ", ".join(
            f"{n} {sweep[(n, small)]:.3f}/{sweep[(n, large)]:.3f}" for n in NORMS
        ),
    )

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for norm, r in with_without.items():
        axes[0].plot(
            _smooth(r["step_loss"], steps_per_epoch),
            label="batch norm" if norm == "batch" else "no norm",
        )
    axes[0].axhline(target, color="grey", lw=0.8, ls="--")
    axes[0].set(
        title="training loss (moving mean over an epoch)", xlabel="step", yscale="log"
    )
    axes[0].legend()
    width = 0.8 / len(s["batch_sizes"])
    for i, batch_size in enumerate(s["batch_sizes"]):
        axes[1].bar(
            np.arange(len(NORMS)) + i * width,
            [sweep[(n, batch_size)] for n in NORMS],
            width,
            label=f"batch {batch_size}",
        )
    axes[1].set_xticks(
        np.arange(len(NORMS)) + width * (len(s["batch_sizes"]) - 1) / 2, NORMS
    )
    axes[1].set(title="test accuracy after equal updates", ylim=(0, 1))
    axes[1].legend()
    run.figure(fig, "normalization.png")


def _smooth(values, window):
    values = np.asarray(values, dtype="float64")
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def _tail(values, n=20):
    return float(np.mean(values[-n:]))


def _steps_to(losses, target, window):
    """First step at which the moving mean over `window` steps is below
    `target` (None if never)."""
    smooth = _smooth(losses, window)
    hit = np.flatnonzero(smooth < target)
    return int(hit[0]) + min(window, len(losses)) if len(hit) else None
