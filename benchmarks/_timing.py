"""What the benchmarks share: the A/B timing (warm-up, tracing excluded, then A and
B timed alternately, and the median of the per-round ratios with its spread), and
the zoo models paired with their keras.applications twins."""

import statistics
import time

import keras

from kerazoo.models import create_model

# kerazoo's name -> keras.applications' constructor of the same network.
APPLICATIONS = {
    "efficientnet_b0": "EfficientNetB0",
    "resnet50": "ResNet50",
    "densenet121": "DenseNet121",
}

# The options that make kerazoo's network the one keras.applications builds
# (those its ported weights use, `kerazoo.pretrained.MANIFEST`): ResNet-50 v1,
# strided in the first 1x1 convolution of a stage, where kerazoo's default is
# v1.5 (strided in the 3x3, 6-7% more FLOPs); Keras's batch-norm epsilon; and,
# like Keras's ResNet and DenseNet, no preprocessing inside the model.
TWINS = {
    "resnet50": {"stride_on": "1x1", "norm_epsilon": 1.001e-5, "preprocessing": "none"},
    "densenet121": {"norm_epsilon": 1.001e-5, "preprocessing": "none"},
}


def _time(fn, steps):
    start = time.perf_counter()
    for _ in range(steps):
        out = fn()
    # Wait for the last result (asynchronous backends).
    keras.ops.convert_to_numpy(out[0] if isinstance(out, (list, tuple)) else out)
    return time.perf_counter() - start


def compare(fn_a, fn_b, steps, repeats, warmup=3):
    """Times `fn_a` against `fn_b`; returns `ratio_median`, `ratio_min`,
    `ratio_max` (A's time over B's) and the median `a_ms`, `b_ms` per call."""
    for _ in range(warmup):
        _time(fn_a, 1)
        _time(fn_b, 1)
    ratios, times_a, times_b = [], [], []
    for _ in range(repeats):
        a = _time(fn_a, steps)
        b = _time(fn_b, steps)
        times_a.append(a / steps)
        times_b.append(b / steps)
        ratios.append(a / b)
    return ratio_record(ratios, times_a, times_b)


def ratio_record(ratios, seconds_a, seconds_b):
    """The record every benchmark reports: the median ratio and its spread,
    and the median times of A and B in milliseconds."""
    return {
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "a_ms": 1e3 * statistics.median(seconds_a),
        "b_ms": 1e3 * statistics.median(seconds_b),
    }


def write_json(path, results, **extra):
    """`results` (and `extra` fields) with the machine's name, to `path`."""
    import json
    import platform

    with open(path, "w") as f:
        json.dump(
            {
                "machine": platform.processor() or platform.machine(),
                **extra,
                "results": results,
            },
            f,
            indent=2,
        )


def zoo_model(name, size, source="kerazoo", jit=False):
    """kerazoo's `name`, or (`source="keras.applications"`) its twin there, with
    random weights and 1,000 classes, compiled for SGD with momentum.

    kerazoo's network is built as the same network as the twin (`TWINS`), so
    that a ratio measures the implementations, not two architectures."""
    keras.utils.set_random_seed(0)
    if source == "kerazoo":
        model = create_model(name, input_shape=(size, size, 3), **TWINS.get(name, {}))
    else:
        model = getattr(keras.applications, APPLICATIONS[name])(
            weights=None, input_shape=(size, size, 3)
        )
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        jit_compile=jit,
    )
    return model
