"""kerazoo's optimizers against Keras's built-ins, `apply` over ResNet-50's variables.

For each update rule, two optimizers (kerazoo's and Keras's) own identical copies
of variables shaped like ResNet-50's trainable variables (25.6M parameters; with
`--quick`, the first stages only). Each applies a fixed set of gradients inside a
compiled `tf.function` (`jit_compile` set explicitly, the same on both sides).
After warm-up (tracing excluded) the two are timed alternately for `--repeats`
rounds of `--steps` calls; the report is the median of the per-round time ratios
(kerazoo / Keras) and their spread. A second table gives the cost of kerazoo's
non-finite-gradient guard (`skip_nonfinite=True` against `False`), a third what
TensorFlow's fused training kernels save (kerazoo with them against kerazoo's
generic path, both guarded), a fourth the least any guard can cost: Keras's
update plus one NaN/Inf test of every gradient, against Keras's update.
With `--train-step`, a fifth: whole training steps of ResNet-50 (kerazoo's, as
the zoo benchmarks build it; `--size`, `--batch`; `--model` another zoo model,
with random weights and 1,000 classes) with kerazoo's optimizer
against the same network with Keras's, where the update shares the step with
the forward and backward passes.

    kerazoo bench optimizers [--quick]
    python benchmarks/bench_optimizers.py [--quick] [--jit] [--train-step]
        [--model resnet50] [--size 128] [--batch 8] [--json PATH]

TensorFlow backend only (the compiled function is a `tf.function`).
"""

import argparse
import os
import platform

import keras
import numpy as np
import tensorflow as tf

from kerazoo import optimizers
from kerazoo.benchmarks.timing import APPLICATIONS
from kerazoo.benchmarks.timing import compare
from kerazoo.benchmarks.timing import ratio_table
from kerazoo.benchmarks.timing import write_json
from kerazoo.benchmarks.timing import zoo_model
from kerazoo.models import create_model

RULES = {
    # name: (kerazoo factory, keras factory)
    "sgd": (
        lambda **kw: optimizers.SGD(0.01, **kw),
        lambda: keras.optimizers.SGD(0.01),
    ),
    "momentum": (
        lambda **kw: optimizers.SGD(0.01, momentum=0.9, **kw),
        lambda: keras.optimizers.SGD(0.01, momentum=0.9),
    ),
    "nesterov": (
        lambda **kw: optimizers.SGD(0.01, momentum=0.9, nesterov=True, **kw),
        lambda: keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
    ),
    "rmsprop": (
        lambda **kw: optimizers.RMSProp(0.001, **kw),
        lambda: keras.optimizers.RMSprop(0.001),
    ),
    "adam": (
        lambda **kw: optimizers.Adam(0.001, **kw),
        lambda: keras.optimizers.Adam(0.001),
    ),
    "adagrad": (
        lambda **kw: optimizers.AdaGrad(0.01, **kw),
        lambda: keras.optimizers.Adagrad(0.01),
    ),
}


def generic(optimizer):
    """The optimizer with its fused kernels turned off."""
    optimizer._use_fused_kernels = False
    return optimizer


def resnet50_shapes(quick):
    model = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    if quick:
        shapes = shapes[:60]
    return shapes


def make_step(optimizer, shapes, gradients, jit, test_gradients=False):
    """`optimizer.apply` over fresh variables, in a compiled function.

    `test_gradients` adds what any NaN/Inf guard must do: read every gradient
    once to test it (the same one sum per gradient as kerazoo's), with no skip;
    with Keras's optimizer, against Keras's update alone, the least a guard
    can cost."""
    variables = [
        keras.Variable(np.full(shape, 0.1, "float32"), name=f"v{i}")
        for i, shape in enumerate(shapes)
    ]
    optimizer.build(variables)

    @tf.function(jit_compile=jit)
    def step():
        finite = True
        if test_gradients:
            finite = tf.reduce_all(
                tf.stack([tf.math.is_finite(tf.reduce_sum(g)) for g in gradients])
            )
        optimizer.apply(gradients, variables)
        return optimizer.iterations, finite

    return step


def train_step(optimizer, size, batch, jit, name="resnet50"):
    """One compiled training step of the zoo model `name` with `optimizer`, on
    a fixed batch (random weights, 1,000 classes); a model with a
    keras.applications twin is built as that twin."""
    if name in APPLICATIONS:
        model = zoo_model(name, size, jit=jit)
    else:
        keras.utils.set_random_seed(0)
        model = create_model(name, num_classes=1000, input_shape=(size, size, 3))
    model.compile(
        optimizer=optimizer, loss="sparse_categorical_crossentropy", jit_compile=jit
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 1000, batch)
    return lambda: model.train_on_batch(x, y)


def _table(title, header_a, header_b, results):
    print(title)
    ratio_table(results.items(), (header_a, header_b), label_width=10, ms_width=12)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer variables")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True")
    parser.add_argument("--rules", nargs="*", default=list(RULES), choices=list(RULES))
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--train-step", action="store_true", help="also whole training steps"
    )
    parser.add_argument(
        "--model", default="resnet50", help="with --train-step: a zoo model"
    )
    parser.add_argument("--size", type=int, default=128, help="with --train-step")
    parser.add_argument("--batch", type=int, default=8, help="with --train-step")
    parser.add_argument("--json", default=None, help="also write results here")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("bench_optimizers.py needs KERAS_BACKEND=tensorflow")

    steps = args.steps or (3 if args.quick else 5)
    repeats = args.repeats or 7
    shapes = resnet50_shapes(args.quick)
    parameters = sum(int(np.prod(s)) for s in shapes)
    rng = np.random.default_rng(0)
    gradients = [
        tf.constant(rng.normal(scale=1e-3, size=s).astype("float32")) for s in shapes
    ]

    versus_keras, guard, fused, floor = {}, {}, {}, {}
    for name in args.rules:
        ours, theirs = RULES[name]
        print(f"timing {name} ...", flush=True)
        versus_keras[name] = compare(
            make_step(ours(), shapes, gradients, args.jit),
            make_step(theirs(), shapes, gradients, args.jit),
            steps,
            repeats,
        )
        guard[name] = compare(
            make_step(ours(), shapes, gradients, args.jit),
            make_step(ours(skip_nonfinite=False), shapes, gradients, args.jit),
            steps,
            repeats,
        )
        fused[name] = compare(
            make_step(ours(), shapes, gradients, args.jit),
            make_step(generic(ours()), shapes, gradients, args.jit),
            steps,
            repeats,
        )
        floor[name] = compare(
            make_step(theirs(), shapes, gradients, args.jit, test_gradients=True),
            make_step(theirs(), shapes, gradients, args.jit),
            steps,
            repeats,
        )

    steps_whole = {}
    for name in args.rules if args.train_step else ():
        ours, theirs = RULES[name]
        print(f"timing {name} in a training step ...", flush=True)
        steps_whole[name] = compare(
            train_step(ours(), args.size, args.batch, args.jit, args.model),
            train_step(theirs(), args.size, args.batch, args.jit, args.model),
            steps,
            repeats,
        )

    setting = (
        f"backend=tensorflow jit_compile={args.jit} variables={len(shapes)} "
        f"parameters={parameters:,} steps={steps} repeats={repeats}"
    )
    print(f"\nOptimizer apply, ResNet-50 variable shapes ({setting})")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    _table("kerazoo vs Keras", "kerazoo ms", "keras ms", versus_keras)
    _table(
        "\nkerazoo, skip_nonfinite=True vs False", "guarded ms", "unguarded ms", guard
    )
    _table("\nkerazoo, fused kernels vs generic", "fused ms", "generic ms", fused)
    _table(
        "\nthe guard's floor: Keras's update plus a NaN/Inf test of every "
        "gradient vs Keras's update",
        "tested ms",
        "keras ms",
        floor,
    )
    results = {
        "versus_keras": versus_keras,
        "nonfinite_guard": guard,
        "fused_kernels": fused,
        "guard_floor": floor,
    }
    if steps_whole:
        _table(
            f"\nwhole training step, {args.model} {args.size}x{args.size} batch "
            f"{args.batch}: kerazoo's optimizer (guarded) vs Keras's",
            "kerazoo ms",
            "keras ms",
            steps_whole,
        )
        results["train_step"] = steps_whole
    if args.json:
        write_json(args.json, results, setting=setting)
    return results


if __name__ == "__main__":
    main()
