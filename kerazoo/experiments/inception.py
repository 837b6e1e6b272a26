"""Inception: what the 1x1 reductions buy. Naive and reduced Inception modules
(GoogLeNet's inception (3a) shape) and whole GoogLeNets, compared on parameters,
FLOPs and time per training step; and two small Inception networks of each kind
trained equally on the digits."""

import time

import numpy as np

from kerazoo.experiments._common import digits
from kerazoo.experiments._common import fit_and_test
from kerazoo.experiments._common import pyplot

# GoogLeNet's inception (3a): 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj.
MODULE_3A = (64, 96, 128, 16, 32, 32)


def _block(kind, spec, name=None):
    from kerazoo.models.googlenet import inception_module

    return inception_module(
        spec,
        kind,
        batch_norm=True,
        norm_momentum=0.9,  # running statistics settle within a short run
        name=name,
    )


def _step_ms(model, shape, batch, repeats):
    """Median milliseconds of one compiled training step."""
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch, *shape)).astype("float32")
    y = rng.integers(0, model.outputs[0].shape[-1], batch)
    model.train_on_batch(x, y)  # trace
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _module_model(kind, shape):
    import keras

    inputs = keras.Input(shape)
    x = _block(kind, MODULE_3A)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def small_inception_net(kind, seed, width=32):
    """A 3x3 stem, two Inception modules (with a pooling between) and a linear
    classifier, for the 8x8 digits."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inputs)
    x = _block(kind, (16, 16, 32, 8, 16, 16), name="inception_a")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = _block(kind, (32, 32, 64, 8, 16, 16), name="inception_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=f"inception_{kind}")


def _measure(run, label, build, shape, s, flops_shape=None):
    from kerazoo._session import clear_session
    from kerazoo.models.analysis import flops

    clear_session(free_memory=False)
    count = flops(build(flops_shape), flops_shape) if flops_shape else None
    clear_session(free_memory=False)
    model = build(shape)
    row = {
        "what": label,
        "params": int(model.count_params()),
        "flops": count or flops(model, shape),
        "step_ms": _step_ms(model, shape, s["step_batch"], s["step_repeats"]),
    }
    run.log(
        f"  {label:28s} {row['params']:>12,d} params  {row['flops'] / 1e9:9.3f} GFLOPs"
        f"  {row['step_ms']:8.1f} ms/step (batch {s['step_batch']}, "
        f"{shape[0]}x{shape[1]})"
    )
    return row


def run(run, s):
    from kerazoo.models import create_model

    rows = []
    run.log("\n1. Cost: modules (28x28x192 input, GoogLeNet's 3a) and GoogLeNets")
    for kind in ("naive", "reduced"):
        rows.append(
            _measure(
                run,
                f"module 3a, {kind}",
                lambda shape, kind=kind: _module_model(kind, shape),
                (28, 28, 192),
                s,
            )
        )
    size, flops_size = s["googlenet_step_size"], s["googlenet_flops_size"]
    for kind in ("naive", "reduced"):
        rows.append(
            _measure(
                run,
                f"GoogLeNet, {kind}",
                lambda shape, kind=kind: create_model(
                    "googlenet",
                    num_classes=1000,
                    input_shape=shape,
                    inception=kind,
                    classifier_activation=None,
                ),
                (size, size, 3),
                s,
                flops_shape=None if flops_size == size else (flops_size,) * 2 + (3,),
            )
        )
    run.log(f"  (FLOPs of the GoogLeNets at {flops_size}x{flops_size}, one image)")

    run.log(
        f"\n2. Two small Inception networks of each kind on the digits "
        f"({s['epochs']} epochs, Adam lr {s['learning_rate']})"
    )
    import keras

    from kerazoo._session import clear_session

    data = digits(seed=s["seed"])
    accuracy = {}
    for kind in ("naive", "reduced"):
        row = _measure(
            run,
            f"small net, {kind}",
            lambda shape, kind=kind: small_inception_net(kind, 0),
            (8, 8, 1),
            s,
        )
        clear_session(free_memory=False)
        out = fit_and_test(
            small_inception_net(kind, s["seed"]),
            keras.optimizers.Adam(s["learning_rate"]),
            data["train"],
            batch_size=32,
            epochs=s["epochs"],
            validation=data["validation"],
            test=data["test"],
        )
        row["train_seconds"] = out["seconds"]
        row["val_accuracy"] = out["history"]["val_accuracy"]
        row["test_accuracy"] = out["test_accuracy"]
        accuracy[kind] = row
        rows.append(row)
        run.log(
            f"    test accuracy {row['test_accuracy']:.4f} after "
            f"{row['train_seconds']:.1f} s of training"
        )
    run.write_csv(
        "inception.csv",
        [{k: v for k, v in r.items() if k != "val_accuracy"} for r in rows],
    )
    run.record("rows", rows)
    by = {r["what"]: r for r in rows}
    for scope in ("module 3a", "GoogLeNet"):
        naive, reduced = by[f"{scope}, naive"], by[f"{scope}, reduced"]
        run.verdict(
            f"1x1 reductions make the {scope} cheaper",
            reduced["flops"] < naive["flops"] and reduced["params"] < naive["params"],
            f"FLOPs {naive['flops'] / reduced['flops']:.1f}x fewer, parameters "
            f"{naive['params'] / reduced['params']:.1f}x fewer, training step "
            f"{naive['step_ms'] / reduced['step_ms']:.1f}x faster",
        )
    n, r = accuracy["naive"], accuracy["reduced"]
    run.verdict(
        "the reduced network learns as well as the naive one, for less",
        r["test_accuracy"] >= n["test_accuracy"] - 0.02,
        f"test accuracy reduced {r['test_accuracy']:.4f} vs naive "
        f"{n['test_accuracy']:.4f} after {s['epochs']} epochs; FLOPs "
        f"{n['flops'] / r['flops']:.1f}x fewer; a training step "
        f"{r['step_ms'] / n['step_ms']:.2f}x the naive one's time"
        + (
            " (at 8x8 the extra layers' overhead outweighs the arithmetic saved)"
            if r["step_ms"] > n["step_ms"]
            else ""
        ),
    )

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    labels = [r["what"] for r in rows[:4]]
    for ax, key, title in (
        (axes[0], "flops", "FLOPs (log)"),
        (axes[1], "step_ms", "ms per training step (log)"),
    ):
        ax.barh(labels, [r[key] for r in rows[:4]], color=["C3", "C0"] * 2)
        ax.set(xscale="log", title=title)
    for kind, c in (("naive", "C3"), ("reduced", "C0")):
        v = accuracy[kind]["val_accuracy"]
        axes[2].plot(range(1, len(v) + 1), v, "o-", color=c, label=kind)
    axes[2].set(title="small nets: validation accuracy", xlabel="epoch")
    axes[2].legend()
    run.figure(fig, "inception.png")
