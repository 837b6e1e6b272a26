"""Optimizers: the lecture's update rules on 2-D functions (where the path can
be drawn) and on a small network (where the loss curve is what counts); and
SGD's three batch regimes (per-example, mini-batch, full-batch)."""

import numpy as np

from kerazoo.experiments._common import digits
from kerazoo.experiments._common import fit_and_test
from kerazoo.experiments._common import loss_per_step
from kerazoo.experiments._common import pyplot

RULES = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adagrad")


def make_optimizer(rule, learning_rate, momentum=0.9):
    from kerazoo import optimizers

    if rule == "sgd":
        return optimizers.SGD(learning_rate)
    if rule in ("momentum", "nesterov"):
        return optimizers.SGD(
            learning_rate, momentum=momentum, nesterov=rule == "nesterov"
        )
    return {
        "rmsprop": optimizers.RMSProp,
        "adam": optimizers.Adam,
        "adagrad": optimizers.AdaGrad,
    }[rule](learning_rate)


def quadratic(condition):
    """f(x, y) = (x^2 + condition * y^2) / 2: a valley `condition` times steeper
    across than along."""

    def f(p):
        x, y = p
        return 0.5 * (x * x + condition * y * y), np.array([x, condition * y])

    return f


def rosenbrock(p):
    """Rosenbrock's banana: minimum 0 at (1, 1) at the end of a curved valley."""
    x, y = p
    value = (1 - x) ** 2 + 100 * (y - x * x) ** 2
    grad = np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
    return value, grad


def descend(optimizer, f, start, steps):
    """Runs `optimizer` on `f` from `start`; returns the path and the losses.
    The gradient is exact (analytic), so only the update rule differs."""
    import keras

    point = keras.Variable(np.asarray(start, "float32"), name="point")
    optimizer.build([point])
    path, losses = [], []
    for _ in range(steps):
        p = keras.ops.convert_to_numpy(point).astype("float64")
        value, grad = f(p)
        path.append(p)
        losses.append(value)
        if not np.isfinite(value):
            break
        optimizer.apply([keras.ops.convert_to_tensor(grad.astype("float32"))], [point])
    return np.array(path), np.array(losses)


def steps_to(losses, threshold):
    hit = np.flatnonzero(losses < threshold)
    return int(hit[0]) if len(hit) else None


def _surfaces(run, s):
    results = {}
    functions = {
        "quadratic": (
            quadratic(s["condition"]),
            s["quadratic_start"],
            s["quadratic_lr"],
        ),
        "rosenbrock": (rosenbrock, s["rosenbrock_start"], s["rosenbrock_lr"]),
    }
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    rows = []
    for k, (fname, (f, start, lrs)) in enumerate(functions.items()):
        results[fname] = {}
        for rule in RULES:
            path, losses = descend(
                make_optimizer(rule, lrs[rule]), f, start, s["surface_steps"]
            )
            results[fname][rule] = {"path": path, "losses": losses}
            rows.append(
                {
                    "function": fname,
                    "rule": rule,
                    "learning_rate": lrs[rule],
                    "final_loss": float(losses[-1]),
                    "steps_to_threshold": steps_to(losses, s["threshold"]),
                }
            )
            run.log(
                f"  {fname:10s} {rule:8s} lr={lrs[rule]:<7g} final f={losses[-1]:.3g}"
                f"  steps to f<{s['threshold']:g}: {rows[-1]['steps_to_threshold']}"
            )
        ax = axes[2 * k]
        lo = np.min([r["path"].min(axis=0) for r in results[fname].values()], axis=0)
        hi = np.max([r["path"].max(axis=0) for r in results[fname].values()], axis=0)
        pad = 0.15 * (hi - lo) + 0.1
        xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 200)
        ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 200)
        gx, gy = np.meshgrid(xs, ys)
        gz = f(np.stack([gx, gy]))[0]
        ax.contour(gx, gy, np.log10(gz + 1e-6), levels=25, cmap="Greys", linewidths=0.6)
        for rule, r in results[fname].items():
            ax.plot(r["path"][:, 0], r["path"][:, 1], ".-", ms=2, lw=1, label=rule)
        ax.set_title(f"{fname}: paths from {tuple(start)}")
        ax.legend(fontsize=7)
        ax = axes[2 * k + 1]
        for rule, r in results[fname].items():
            ax.semilogy(np.maximum(r["losses"], 1e-16), label=rule)
        ax.set_title(f"{fname}: f against steps")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    run.figure(fig, "trajectories.png")
    run.write_csv("trajectories.csv", rows)
    run.record("surfaces", rows)
    return {(r["function"], r["rule"]): r for r in rows}


def _network(seed):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def _train(optimizer, data, batch_size, epochs, seed, examples=None):

    x, y = data["train"]
    if examples:
        x, y = x[:examples], y[:examples]
    xt, yt = data["test"]
    steps = loss_per_step()
    out = fit_and_test(
        _network(seed),
        optimizer,
        (x.reshape(len(x), -1), y),
        batch_size=batch_size,
        epochs=epochs,
        test=(xt.reshape(len(xt), -1), yt),
        callbacks=[steps],
    )
    return {
        "epoch_loss": out["history"]["loss"],
        "step_loss": steps.losses,
        "seconds": out["seconds"],
        "epoch_seconds": steps.epoch_seconds,
        "test_accuracy": out["test_accuracy"],
    }


def run(run, s):
    run.log(
        "\n1. Update rules on an ill-conditioned quadratic and Rosenbrock's function"
    )
    surf = _surfaces(run, s)

    def steps(fn, rule):
        n = surf[(fn, rule)]["steps_to_threshold"]
        return s["surface_steps"] if n is None else n

    sgd, mom, nag = (steps("quadratic", r) for r in ("sgd", "momentum", "nesterov"))
    run.verdict(
        "momentum speeds up SGD (same learning rate, ill-conditioned quadratic)",
        mom < sgd,
        f"steps to f<{s['threshold']:g}: momentum {mom}, SGD {sgd}"
        + (
            " (SGD never got there)"
            if surf[("quadratic", "sgd")]["steps_to_threshold"] is None
            else ""
        ),
    )
    rb = {r: surf[("rosenbrock", r)]["final_loss"] for r in RULES}
    run.verdict(
        "Nesterov's look-ahead is at least as fast as plain momentum",
        nag <= mom and rb["nesterov"] <= rb["momentum"] * 1.05,
        f"quadratic: {nag} vs {mom} steps; Rosenbrock final f {rb['nesterov']:.3g} vs "
        f"{rb['momentum']:.3g}",
    )

    run.log("\n2. A 64-64-10 network on the digits: one loss curve per rule")
    data = digits(seed=s["seed"])
    curves = {}
    for rule in RULES:
        curves[rule] = _train(
            make_optimizer(rule, s["network_lr"][rule]),
            data,
            s["batch_size"],
            s["epochs"],
            s["seed"],
        )
        run.log(
            f"  {rule:8s} lr={s['network_lr'][rule]:<6g} final training loss "
            f"{curves[rule]['epoch_loss'][-1]:.4f}, test accuracy "
            f"{curves[rule]['test_accuracy']:.4f} ({curves[rule]['seconds']:.1f} s)"
        )
    final = {rule: c["epoch_loss"][-1] for rule, c in curves.items()}
    run.verdict(
        "momentum lowers the training loss faster than SGD on a network",
        final["momentum"] < final["sgd"],
        f"loss after {s['epochs']} epochs: momentum {final['momentum']:.4f}, SGD "
        f"{final['sgd']:.4f}",
    )
    run.verdict(
        "Adam (RMSProp's scaling plus momentum) improves on RMSProp at the same "
        "learning rate",
        final["adam"] < final["rmsprop"],
        f"loss after {s['epochs']} epochs: Adam {final['adam']:.4f}, RMSProp "
        f"{final['rmsprop']:.4f} (momentum SGD at its own rate: "
        f"{final['momentum']:.4f})",
    )

    run.log("\n3. SGD's batch regimes: per-example, mini-batch, full-batch")
    regimes = {}
    n_train = min(s["regime_examples"], len(data["train"][1]))
    for regime, batch in (
        ("per-example", 1),
        ("mini-batch", s["batch_size"]),
        ("full-batch", n_train),
    ):
        regimes[regime] = _train(
            make_optimizer("sgd", s["regime_lr"]),
            data,
            batch,
            s["regime_epochs"],
            s["seed"],
            examples=n_train,
        )
        r = regimes[regime]
        r["updates"] = len(r["step_loss"])
        run.log(
            f"  {regime:11s} batch {batch:5d}: {r['updates']:5d} updates, loss "
            f"{r['epoch_loss'][-1]:.4f}, {r['seconds']:.1f} s"
        )
    per, mini, full = (regimes[k] for k in ("per-example", "mini-batch", "full-batch"))
    run.verdict(
        "per epoch, per-example SGD makes the most progress and full-batch the least",
        per["epoch_loss"][-1] < mini["epoch_loss"][-1] < full["epoch_loss"][-1],
        f"loss after {s['regime_epochs']} epochs: per-example "
        f"{per['epoch_loss'][-1]:.4f}, mini-batch {mini['epoch_loss'][-1]:.4f}, "
        f"full-batch {full['epoch_loss'][-1]:.4f}",
    )
    run.verdict(
        "per-example SGD pays in time: each epoch is slower than mini-batch's",
        per["seconds"] > mini["seconds"],
        f"{per['seconds']:.1f} s vs {mini['seconds']:.1f} s for "
        f"{s['regime_epochs']} epochs ({per['seconds'] / mini['seconds']:.1f}x)",
    )

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for rule, c in curves.items():
        axes[0].plot(range(1, len(c["epoch_loss"]) + 1), c["epoch_loss"], label=rule)
    axes[0].set(title="digits network: training loss", xlabel="epoch", yscale="log")
    axes[0].legend(fontsize=8)
    for regime, r in regimes.items():
        axes[1].plot(
            range(1, len(r["epoch_loss"]) + 1), r["epoch_loss"], "o-", label=regime
        )
        axes[2].plot(r["epoch_seconds"], r["epoch_loss"], "o-", label=regime)
    axes[1].set(title="SGD regimes: loss per epoch", xlabel="epoch", yscale="log")
    axes[2].set(
        title="SGD regimes: loss against seconds", xlabel="seconds", yscale="log"
    )
    axes[1].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    run.figure(fig, "training.png")
    rows = [
        {"rule": rule, "epoch": e + 1, "loss": loss}
        for rule, c in curves.items()
        for e, loss in enumerate(c["epoch_loss"])
    ]
    run.write_csv("network_losses.csv", rows)
    run.record(
        "network",
        {
            rule: {k: c[k] for k in ("epoch_loss", "test_accuracy", "seconds")}
            for rule, c in curves.items()
        },
    )
    run.record(
        "regimes",
        {
            k: {f: r[f] for f in ("epoch_loss", "seconds", "updates")}
            for k, r in regimes.items()
        },
    )
