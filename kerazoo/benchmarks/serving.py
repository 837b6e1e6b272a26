"""The served SavedModel against the Keras model it came from, on the CPU.

For each model (random weights, batch norms given trained-like statistics), three
exports by `kerazoo.export.export_saved_model`: the default (batch norms folded,
weights frozen into the graph as constants), folded with the weights as variables
(`freeze=False`), and as trained (`fold=False, freeze=False`); for a model with
swish, a fourth: the default with Keras's silu in place of the written-out swish
that folding puts in. Each is loaded with `tf.saved_model.load` and called
through `serving_default`; the Keras model is called as a compiled `tf.function`
of `model(x, training=False)` (`jit_compile=False`, as the served graph). A last
variant bounds what folding alone could win: the same Keras model traced with
every batch norm replaced by the identity (wrong outputs, the time of the network
with no batch norm at all). After warm-up the variants are timed in turn, round
after round; the report is the median over rounds of each variant's time over
the Keras model's, with its spread.

    kerazoo bench serving [--quick]
    python benchmarks/bench_serving.py [--quick] [--models M ...] [--json PATH]
"""

import argparse
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from kerazoo._compat import sublayers
from kerazoo.benchmarks.timing import ratio_record
from kerazoo.benchmarks.timing import ratio_table
from kerazoo.benchmarks.timing import write_json
from kerazoo.export import export_saved_model
from kerazoo.export import fold_batch_norms
from kerazoo.layers import BatchNormalization
from kerazoo.layers import swish
from kerazoo.models import create_model
from kerazoo.testing import randomize_batch_norms

MODELS = ("efficientnet_b0", "resnet50")

# The exports timed, by label: the default (batch norms folded, weights frozen
# into the graph), folded with variables, and as trained.
EXPORTS = {
    "served": {},
    "served, variables": {"freeze": False},
    "served unfolded, variables": {"fold": False, "freeze": False},
}


# The default export with Keras's silu put back in place of the written-out
# swish that folding gives it (models with swish only): what writing it out gains.
SILU = "served, Keras's silu"


def folded_with_keras_silu(model):
    """The default export's folded model with Keras's silu instead of
    `kerazoo.layers.swish`, or None for a model without swish."""
    folded, report = fold_batch_norms(model)
    if not report.swish:
        return None
    for layer in sublayers(folded):
        if getattr(layer, "activation", None) is swish:
            layer.activation = keras.activations.silu
    return folded


def keras_call(model, spec, without_norms=False):
    """The Keras model as a compiled function; `without_norms` traces it with
    every kerazoo batch norm replaced by the identity."""
    fn = tf.function(
        lambda images: model(images, training=False),
        input_signature=[spec],
        jit_compile=False,
    )
    if not without_norms:
        return fn
    call = BatchNormalization.call
    BatchNormalization.call = lambda self, inputs, training=None: inputs
    try:
        fn = fn.get_concrete_function()
    finally:
        BatchNormalization.call = call
    return fn


def _time(fn, x, steps):
    start = time.perf_counter()
    for _ in range(steps):
        out = fn(x)
    np.asarray(out)
    return (time.perf_counter() - start) / steps


def bench_model(name, size, batches, steps, repeats, folder, log):
    keras.utils.set_random_seed(0)
    model = randomize_batch_norms(create_model(name, input_shape=(size, size, 3)))
    exports, loaded = {}, []
    sources = {label: (model, kwargs) for label, kwargs in EXPORTS.items()}
    with_silu = folded_with_keras_silu(model)
    if with_silu is not None:
        sources[SILU] = (with_silu, {"fold": False})
    for label, (source, kwargs) in sources.items():
        path = export_saved_model(
            source,
            folder / f"{name}-{label.replace(' ', '-').replace(',', '')}",
            verify=False,
            log=lambda line: None,
            **kwargs,
        )
        loaded.append(tf.saved_model.load(str(path)))  # kept alive while timed
        exports[label] = loaded[-1].signatures["serving_default"]
    spec = tf.TensorSpec([None, size, size, 3], tf.float32)
    variants = {
        "Keras": keras_call(model, spec),
        **{
            label: (lambda x, fn=fn: fn(images=x)["probabilities"])
            for label, fn in exports.items()
        },
        "no batch norm": keras_call(model, spec, without_norms=True),
    }
    results = {}
    rng = np.random.default_rng(1)
    for batch in batches:
        x = tf.constant(rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"))
        reference = variants["Keras"](x).numpy()
        for label in exports:
            got = variants[label](x).numpy()
            diff = float(np.max(np.abs(got - reference)))
            log(f"  {name} batch {batch}: {label} max |difference| {diff:.2g}")
        for fn in variants.values():  # warm-up
            _time(fn, x, 1)
        seconds = {label: [] for label in variants}
        for _ in range(repeats):
            for label, fn in variants.items():
                seconds[label].append(_time(fn, x, steps))
        for label in variants:
            if label == "Keras":
                continue
            ratios = [
                a / b for a, b in zip(seconds[label], seconds["Keras"], strict=True)
            ]
            results[f"{name} {label} vs Keras, batch {batch}"] = ratio_record(
                ratios, seconds[label], seconds["Keras"]
            )
        keras_ms = 1e3 * statistics.median(seconds["Keras"])
        log(f"  {name} batch {batch}: Keras {keras_ms:.1f} ms per call")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller and shorter")
    parser.add_argument("--jit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write results here")
    args = parser.parse_args(argv)
    if args.jit:
        parser.error("the served graph runs without XLA: --jit does not apply")

    size = args.size or (64 if args.quick else 224)
    batches = (1, 4) if args.quick else (1, 16)
    steps = 2 if args.quick else 3
    repeats = args.repeats or (3 if args.quick else 7)
    log = print
    setting = (
        f"backend={keras.backend.backend()} jit_compile=False input={size}x{size}x3 "
        f"batches={batches} steps={steps} repeats={repeats}"
    )
    log(f"served SavedModel vs the Keras model ({setting})")
    log(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            results.update(
                bench_model(
                    name, size, batches, steps, repeats, pathlib.Path(folder), log
                )
            )
    ratio_table(
        results.items(),
        ("ms", "Keras ms"),
        label_width=52,
        ms_width=9,
        decimals=1,
        log=log,
    )
    if args.json:
        write_json(args.json, results, setting=setting)
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
