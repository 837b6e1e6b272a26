"""Transfer: does a pretrained body give a head start? Near transfer (a
ResNet-20 body pretrained by kerazoo on digits 0-4, fine-tuned on digits 5-9)
and far transfer (EfficientNet-Lite0 with its ImageNet weights, on the
digits), each against the same architecture from scratch, with 10 and all
labels per class."""

import numpy as np

from kerazoo.experiments._common import digits
from kerazoo.experiments._common import fit_and_test
from kerazoo.experiments._common import pyplot
from kerazoo.experiments._common import shots


def _adam(learning_rate):
    from kerazoo import optimizers

    return optimizers.Adam(learning_rate)


def _model(name, num_classes, shape, s, weights=None):
    from kerazoo.models import create_model

    return create_model(
        name,
        num_classes=num_classes,
        input_shape=shape,
        weights=weights,
        classifier_activation=None,
        # Short runs: running statistics that settle within them, for both
        # starts (at 0.99 a network from scratch tests on stale statistics).
        norm_momentum=s["norm_momentum"],
    )


def _compare(run, make, data, s, label):
    """Pretrained against scratch, at each number of labels per class."""
    results = {}
    for n in s[f"{label}_shots"]:
        n = None if n == "all" else int(n)
        train = shots(*data["train"], n, seed=s["seed"])
        epochs = s["epochs_all"] if n is None else s["epochs_few"]
        for start in ("pretrained", "scratch"):
            import keras

            from kerazoo._session import clear_session

            clear_session()
            keras.utils.set_random_seed(s["seed"])
            key = f"{start}/{'all' if n is None else n}"
            out = fit_and_test(
                make(start),
                _adam(s["learning_rate"]),
                train,
                batch_size=s["batch_size"],
                epochs=epochs,
                validation=data["validation"],
                test=data["test"],
            )
            results[key] = {
                "val_accuracy": out["history"]["val_accuracy"],
                "test_accuracy": out["test_accuracy"],
                "seconds": out["seconds"],
            }
            r = results[key]
            run.log(
                f"  {label} {key:15s} ({len(train[1])} images, {epochs} epochs): "
                f"validation accuracy after epoch 1 {r['val_accuracy'][0]:.3f}, "
                f"test accuracy {r['test_accuracy']:.4f} ({r['seconds']:.0f} s)"
            )
        p, q = results[f"pretrained/{n or 'all'}"], results[f"scratch/{n or 'all'}"]
        per = "all labels" if n is None else f"{n} labels per class"
        p_mean, q_mean = np.mean(p["val_accuracy"]), np.mean(q["val_accuracy"])
        run.verdict(
            f"{label}, {per}: the pretrained body gives a head start (its "
            "validation accuracy averaged over the epochs is 2+ points higher)",
            p_mean > q_mean + 0.02,
            f"mean validation accuracy {p_mean:.3f} vs scratch {q_mean:.3f}; after "
            f"epoch 1 {p['val_accuracy'][0]:.3f} vs {q['val_accuracy'][0]:.3f}; test "
            f"accuracy at the end {p['test_accuracy']:.4f} vs {q['test_accuracy']:.4f}",
        )
    return results


def run(run, s):
    import keras

    near_shape = (8, 8, 3)
    run.log(
        f"\n1. Near transfer: {s['near_model']} pretrained on digits 0-4 "
        f"({s['pretrain_epochs']} epochs), fine-tuned on digits 5-9"
    )
    low = digits(seed=s["seed"], rgb=True, classes=[0, 1, 2, 3, 4])
    high = digits(seed=s["seed"], rgb=True, classes=[5, 6, 7, 8, 9])
    keras.utils.set_random_seed(s["seed"])
    source = _model(s["near_model"], 5, near_shape, s)
    source_accuracy = fit_and_test(
        source,
        _adam(s["learning_rate"]),
        low["train"],
        batch_size=s["batch_size"],
        epochs=s["pretrain_epochs"],
        test=low["test"],
    )["test_accuracy"]
    run.log(f"  source network: test accuracy {source_accuracy:.4f} on digits 0-4")
    run.record("near_source_test_accuracy", float(source_accuracy))
    body_weights = source.get_layer("body").get_weights()

    def near(start):
        model = _model(s["near_model"], 5, near_shape, s)
        if start == "pretrained":
            model.get_layer("body").set_weights(body_weights)
        return model

    results = {"near": _compare(run, near, high, s, "near")}
    if s["far_shots"]:
        results["far"] = _far(run, s)
    run.record("curves", results)
    _write(run, results)


def _far(run, s):
    size = s["far_input_size"]
    run.log(
        f"\n2. Far transfer: {s['far_model']} with ImageNet weights vs from scratch, "
        f"digits at {size}x{size} (dark on light, like photographs)"
    )
    far_data = digits(seed=s["seed"], rgb=True, size=size, invert=True)

    def far(start):
        weights = "imagenet" if start == "pretrained" else None
        return _model(s["far_model"], 10, (size, size, 3), s, weights)

    return _compare(run, far, far_data, s, "far")


def _write(run, results):
    run.write_csv(
        "transfer.csv",
        [
            {
                "setting": setting,
                "run": key,
                "test_accuracy": r["test_accuracy"],
                "val_accuracy_epoch1": r["val_accuracy"][0],
                "seconds": round(r["seconds"], 1),
            }
            for setting, rs in results.items()
            for key, r in rs.items()
        ],
    )

    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(results), figsize=(6 * len(results), 4.2), squeeze=False
    )
    for ax, (setting, rs) in zip(axes[0], results.items(), strict=True):
        for key, r in rs.items():
            start, n = key.split("/")
            ax.plot(
                range(1, len(r["val_accuracy"]) + 1),
                r["val_accuracy"],
                "-" if start == "pretrained" else "--",
                color="C0" if n == "all" else "C1",
                label=f"{start}, {n} per class"
                if n != "all"
                else f"{start}, all labels",
            )
        ax.set(title=f"{setting} transfer: validation accuracy", xlabel="epoch")
        ax.legend(fontsize=8)
    run.figure(fig, "transfer.png")
