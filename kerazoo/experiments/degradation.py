"""Degradation: deeper plain networks train worse than shallower ones, and
residual networks of the same depth do not (He et al., "Deep Residual Learning
for Image Recognition", CVPR 2016, Figure 1 and Figure 6); a densely
connected network alongside. CIFAR-10 when it is on this machine (tfds), the
embedded digits otherwise."""

import time

import numpy as np

from kerazoo.experiments._common import digits
from kerazoo.experiments._common import pyplot


def _data(s, run):
    """(train, test) arrays of 0-255 RGB images, and the data's name."""
    if s["data"] in ("auto", "cifar10"):
        try:
            return _cifar10(s), "cifar10"
        except (FileNotFoundError, ValueError, ImportError) as error:
            if s["data"] == "cifar10":
                raise
            run.log(f"  CIFAR-10 is not prepared here ({type(error).__name__}); digits")
    d = digits(seed=s["seed"], rgb=True)
    return (d["train"], d["test"]), "digits"


def _cifar10(s):
    from kerazoo.data import load_data

    data = load_data("tfds:cifar10", seed=s["seed"], download=False)
    out = []
    for split, limit in (
        ("train", s["cifar_train_images"]),
        ("test", s["cifar_test_images"]),
    ):
        x, y = [], []
        for image, label in data.dataset(split).take(limit).as_numpy_iterator():
            x.append(image)
            y.append(label)
        out.append((np.asarray(x, "float32"), np.asarray(y, "int32")))
    return tuple(out)


def dense_network(depth, shape, growth_rate, seed):
    """A DenseNet-BC for small images: a 3x3 stem, three dense blocks of
    `(depth - 4) // 6` bottleneck layers joined by compressing transitions."""
    import keras

    from kerazoo import layers

    keras.utils.set_random_seed(seed)
    n = (depth - 4) // 6
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(2 * growth_rate, 3, padding="same", use_bias=False)(x)
    for i in range(3):
        x = layers.DenseBlock(n, growth_rate, norm_momentum=0.9)(x)
        if i < 2:
            x = layers.TransitionBlock(0.5, norm_momentum=0.9)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=f"dense{depth}")


def cifar_network(depth, shortcut, shape, seed):
    """He et al.'s CIFAR-10 network of `depth = 6n + 2` layers (section 4.2),
    residual or plain: the zoo's `resnetN`/`plainN` at any depth."""
    import keras

    from kerazoo.models.resnet import cifar_body

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = cifar_body(x, (depth - 2) // 6, shortcut=shortcut)
    x = keras.layers.GlobalAveragePooling2D()(x)
    kind = "resnet" if shortcut else "plain"
    return keras.Model(inputs, keras.layers.Dense(10)(x), name=f"{kind}{depth}")


def _network(name, shape, s):
    if name.startswith("dense"):
        return dense_network(int(name[5:]), shape, s["growth_rate"], s["seed"])
    depth = int(name.removeprefix("plain").removeprefix("resnet"))
    return cifar_network(depth, name.startswith("resnet"), shape, s["seed"])


def _check_depths(s):
    from kerazoo.experiments._common import ExperimentError

    for d in s["depths"]:
        if not isinstance(d, int) or d < 8 or (d - 2) % 6:
            raise ExperimentError(
                f"`depths` are 6n + 2 (8, 14, 20, 56...). Received: {d!r}"
            )
    for d in s["dense_depths"]:
        if not isinstance(d, int) or d < 10 or (d - 4) % 6:
            raise ExperimentError(
                f"`dense_depths` are 6n + 4 (10, 16, 40...). Received: {d!r}"
            )


def run(run, s):
    import keras

    from kerazoo import optimizers
    from kerazoo._session import clear_session

    _check_depths(s)
    (train, test), source = _data(s, run)
    run.record("data", source)
    shape = train[0].shape[1:]
    depths = s["depths"]
    names = [f"{kind}{d}" for kind in ("plain", "resnet") for d in depths]
    names += [f"dense{d}" for d in s["dense_depths"]]
    run.log(
        f"\nTraining {', '.join(names)} on {source} ({len(train[1])} images, "
        f"{shape[0]}x{shape[1]}): {s['epochs']} epochs, SGD momentum lr "
        f"{s['learning_rate']}, batch {s['batch_size']}"
    )
    curves = {}
    for name in names:
        clear_session(free_memory=False)
        model = _network(name, shape, s)
        steps = int(np.ceil(len(train[1]) / s["batch_size"])) * s["epochs"]
        model.compile(
            optimizer=optimizers.SGD(
                optimizers.schedules.WarmupCosine(
                    s["learning_rate"], total_steps=steps, warmup_steps=steps // 20
                ),
                momentum=0.9,
            ),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        start = time.perf_counter()
        history = model.fit(
            *train,
            validation_data=test,
            batch_size=s["batch_size"],
            epochs=s["epochs"],
            verbose=0,
        )
        h = history.history
        # Training error is measured again in inference mode after training, so
        # that networks with different numbers of batch-norm layers compare
        # on the same footing; the curve is the running one.
        _, final_train = model.evaluate(*train, batch_size=256, verbose=0)
        curves[name] = {
            "train_error": [1 - a for a in h["accuracy"]],
            "test_error": [1 - a for a in h["val_accuracy"]],
            "final_train_error": 1 - final_train,
            "final_test_error": 1 - h["val_accuracy"][-1],
            "params": int(model.count_params()),
            "seconds": time.perf_counter() - start,
        }
        c = curves[name]
        run.log(
            f"  {name:10s} {c['params']:>9,d} params: training error "
            f"{c['final_train_error']:.4f}, test error {c['final_test_error']:.4f} "
            f"({c['seconds']:.0f} s)"
        )
    run.record("curves", curves)
    run.write_csv(
        "degradation.csv",
        [
            {
                "network": k,
                **{
                    f: v[f] for f in ("params", "final_train_error", "final_test_error")
                },
            }
            for k, v in curves.items()
        ],
    )
    shallow, deep = min(depths), max(depths)
    err = {k: v["final_train_error"] for k, v in curves.items()}
    run.verdict(
        f"a deeper plain network trains worse: plain-{deep} has a higher training "
        f"error than plain-{shallow}",
        err[f"plain{deep}"] > err[f"plain{shallow}"],
        f"training error plain-{deep} {err[f'plain{deep}']:.4f}, plain-{shallow} "
        f"{err[f'plain{shallow}']:.4f}",
    )
    run.verdict(
        f"residual connections remove the degradation: resnet-{deep} trains at "
        f"least as well as resnet-{shallow} (within 0.5 points) and better than "
        f"plain-{deep}",
        err[f"resnet{deep}"] <= err[f"resnet{shallow}"] + 0.005
        and err[f"resnet{deep}"] < err[f"plain{deep}"],
        f"training error resnet-{deep} {err[f'resnet{deep}']:.4f}, resnet-{shallow} "
        f"{err[f'resnet{shallow}']:.4f}, plain-{deep} {err[f'plain{deep}']:.4f}",
    )
    for d in s["dense_depths"]:
        run.verdict(
            f"dense connections also train at depth: dense-{d} below plain-{deep}'s "
            "training error",
            err[f"dense{d}"] < err[f"plain{deep}"],
            f"training error dense-{d} {err[f'dense{d}']:.4f}, plain-{deep} "
            f"{err[f'plain{deep}']:.4f}",
        )

    run.figure(plot_curves(curves, source, depths), "degradation.png")


def plot_curves(curves, source, depths):
    """Training and test error against epochs, one panel per kind of network
    (as in He et al.'s Figure 1); `curves` as in `results.json`."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), sharey=True)
    styles = {depths[0]: "--", depths[-1]: "-"}
    for ax, kind in zip(axes, ("plain", "resnet", "dense"), strict=True):
        for name, c in curves.items():
            if not name.startswith(kind):
                continue
            depth = int(name[len(kind) :])
            epochs = range(1, len(c["train_error"]) + 1)
            ls = styles.get(depth, "-")
            ax.plot(epochs, c["train_error"], ls, color="C0", label=f"{name} train")
            ax.plot(epochs, c["test_error"], ls, color="C3", label=f"{name} test")
        ax.set(title=f"{kind} ({source})", xlabel="epoch", ylabel="error")
        # Errors reach exactly 0 on small data: linear below 1%, log above.
        ax.set_yscale("symlog", linthresh=0.01)
        ax.legend(fontsize=8)
    return fig
