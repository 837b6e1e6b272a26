"""kerazoo BatchNormalization against keras.layers.BatchNormalization.

Two identical Conv-BN-ReLU stacks, one with each batch norm, the same weights,
the same compiled `train_on_batch` / `predict_on_batch` functions. After warm-up
(tracing excluded), the two are timed alternately, A then B, for `--repeats`
rounds of `--steps` calls; the report is the median of the per-round time ratios
(kerazoo / Keras) and their spread. `jit_compile` is set explicitly, the same on
both sides.

    kerazoo bench normalization [--quick]
    python benchmarks/bench_normalization.py [--quick] [--jit] [--json PATH]
"""

import argparse
import os
import platform

import keras
import numpy as np

from kerazoo import layers
from kerazoo.benchmarks.timing import compare
from kerazoo.benchmarks.timing import ratio_table
from kerazoo.benchmarks.timing import write_json


def conv_bn_relu_stack(norm_cls, input_shape, depth, filters):
    inputs = keras.Input(input_shape)
    x = inputs
    for i in range(depth):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=False, name=f"conv{i}"
        )(x)
        x = norm_cls(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, name="head")(x)
    return keras.Model(inputs, outputs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller and shorter")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write results here")
    args = parser.parse_args(argv)

    batch, size, depth, filters = (16, 16, 3, 16) if args.quick else (32, 32, 4, 32)
    steps = 5 if args.quick else 20
    repeats = args.repeats or (7 if args.quick else 9)
    shape = (size, size, 3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, *shape)).astype("float32")
    y = rng.integers(0, 10, size=(batch,))

    keras.utils.set_random_seed(0)
    ours = conv_bn_relu_stack(layers.BatchNormalization, shape, depth, filters)
    theirs = conv_bn_relu_stack(keras.layers.BatchNormalization, shape, depth, filters)
    theirs.set_weights(ours.get_weights())
    for model in (ours, theirs):
        model.compile(
            optimizer=keras.optimizers.SGD(0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=args.jit,
        )

    results = {
        "training step": compare(
            lambda: ours.train_on_batch(x, y),
            lambda: theirs.train_on_batch(x, y),
            steps,
            repeats,
        ),
        "inference": compare(
            lambda: ours.predict_on_batch(x),
            lambda: theirs.predict_on_batch(x),
            steps,
            repeats,
        ),
    }
    setting = (
        f"backend={keras.backend.backend()} jit_compile={args.jit} "
        f"batch={batch} input={size}x{size}x3 depth={depth} "
        f"filters={filters} steps={steps} repeats={repeats}"
    )
    print(f"BatchNormalization, kerazoo vs Keras ({setting})")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )
    ratio_table(results.items())
    if args.json:
        write_json(args.json, results, setting=setting)
    return results


if __name__ == "__main__":
    main()
