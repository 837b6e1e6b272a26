"""Initialization: does the activations' scale survive depth? Per-layer
standard deviation through a deep plain network for small Normal and Uniform
weights, Xavier and He, with sigmoid, tanh and ReLU; then the training curves
that follow from each start."""

import numpy as np

from kerazoo.experiments._common import digits
from kerazoo.experiments._common import pyplot


def _deep_mlp(depth, width, activation, initializer, seed):
    import keras

    from kerazoo.initializers.report import parse_initializer

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((64,))]
    for i in range(depth):
        layers.append(
            keras.layers.Dense(
                width,
                activation=activation,
                kernel_initializer=parse_initializer(initializer, seed=seed + i),
            )
        )
    layers.append(keras.layers.Dense(10))
    return keras.Sequential(layers)


def _train(s, activation, initializer, data):
    import keras

    from kerazoo import optimizers

    model = _deep_mlp(
        s["train_depth"], s["train_width"], activation, initializer, s["seed"]
    )
    model.compile(
        optimizer=optimizers.SGD(s["learning_rate"], momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x, y = data["train"]
    xv, yv = data["validation"]
    history = model.fit(
        x.reshape(len(x), -1),
        y,
        validation_data=(xv.reshape(len(xv), -1), yv),
        batch_size=s["batch_size"],
        epochs=s["epochs"],
        verbose=0,
    )
    h = history.history
    return {"loss": h["loss"], "val_accuracy": h["val_accuracy"]}


def run(run, s):
    from kerazoo.initializers.report import init_report

    inits = s["initializers"]
    names = dict(zip(inits, s["labels"], strict=True))
    run.log(
        f"\n1. Activation std through {s['depth']} Dense layers of {s['width']} "
        "units (unit-variance inputs)"
    )
    results = init_report(
        activations=s["activations"],
        initializers=inits,
        depth=s["depth"],
        width=s["width"],
        batch_size=s["probe_batch"],
        seed=s["seed"],
        verbose=run.verbose,
    )
    plt = pyplot()
    acts = s["activations"]
    fig, axes = plt.subplots(1, len(acts), figsize=(5.5 * len(acts), 4.2))
    table = []
    for ax, activation in zip(np.atleast_1d(axes), acts, strict=True):
        for r in (r for r in results if r["activation"] == activation):
            post = [
                row["std"] for row in r["stats"].rows if row["class"] == "Activation"
            ]
            ax.semilogy(
                range(1, len(post) + 1), post, "o-", ms=3, label=names[r["initializer"]]
            )
            table.extend(
                {
                    "activation": activation,
                    "initializer": names[r["initializer"]],
                    "layer": i + 1,
                    "std": v,
                }
                for i, v in enumerate(post)
            )
        ax.set(title=f"{activation}: activation std per layer", xlabel="layer")
        ax.legend(fontsize=8)
    run.figure(fig, "activation_std.png")
    run.write_csv("activation_std.csv", table)
    run.record(
        "growth_per_layer",
        {f"{r['activation']}/{names[r['initializer']]}": r["growth"] for r in results},
    )
    run.record(
        "last_layer_std",
        {
            f"{r['activation']}/{names[r['initializer']]}": r["last_std"]
            for r in results
        },
    )
    claims = {"sigmoid": "xavier", "tanh": "xavier", "relu": "he"}
    for activation in acts:
        if activation not in claims:
            continue
        rows = {
            names[r["initializer"]]: r for r in results if r["activation"] == activation
        }
        good = next(k for k in rows if k.lower().startswith(claims[activation]))
        text = "; ".join(
            f"{k} x{r['growth']:.3f} ({r['verdict'].split(' (')[0]})"
            for k, r in rows.items()
        )
        run.verdict(
            f"{good} keeps {activation}'s activations at scale through depth "
            "(per-layer std growth within 0.8-1.25, not saturated)",
            rows[good]["verdict"].startswith("keeps"),
            f"std growth per layer: {text}",
        )
    run.log(
        f"\n2. Training a {s['train_depth']}-layer MLP on the digits from each start "
        f"({s['epochs']} epochs, SGD momentum lr {s['learning_rate']})"
    )
    data = digits(seed=s["seed"])
    curves = {}
    for activation in s["train_activations"]:
        for init in inits:
            key = f"{activation}/{names[init]}"
            curves[key] = _train(s, activation, init, data)
            run.log(
                f"  {key:22s} final loss {curves[key]['loss'][-1]:.4f}, validation "
                f"accuracy {curves[key]['val_accuracy'][-1]:.4f}"
            )
    run.record("training", curves)
    fig, axes = plt.subplots(
        1, len(s["train_activations"]), figsize=(5.5 * len(s["train_activations"]), 4.2)
    )
    for ax, activation in zip(np.atleast_1d(axes), s["train_activations"], strict=True):
        for init in inits:
            c = curves[f"{activation}/{names[init]}"]
            ax.plot(
                range(1, len(c["loss"]) + 1), c["loss"], "o-", ms=3, label=names[init]
            )
        ax.set(title=f"{activation}: training loss", xlabel="epoch", yscale="log")
        ax.legend(fontsize=8)
    run.figure(fig, "training.png")
    for activation in s["train_activations"]:
        if activation not in claims:
            continue
        good = next(i for i in inits if names[i].lower().startswith(claims[activation]))
        naive = [i for i in inits if names[i].lower().startswith(("normal", "uniform"))]
        final = {
            names[i]: curves[f"{activation}/{names[i]}"]["loss"][-1] for i in inits
        }
        worst_naive = min(final[names[i]] for i in naive)
        run.verdict(
            f"with {activation}, a {names[good]} start trains better than small "
            "Normal/Uniform weights",
            final[names[good]] < worst_naive,
            ", ".join(f"{k} {v:.4f}" for k, v in final.items())
            + f" (training loss after {s['epochs']} epochs)",
        )
