"""What the benchmarks share: the A/B timing (warm-up, tracing excluded, then A and
B timed alternately, and the median of the per-round ratios with its spread), and
the zoo models paired with their keras.applications twins."""

import statistics
import time

import keras

from kerazoo.models import create_model
from kerazoo.weights.manifest import find_weights

# kerazoo's name -> keras.applications' constructor of the same network.
APPLICATIONS = {
    "efficientnet_b0": "EfficientNetB0",
    "resnet50": "ResNet50",
    "densenet121": "DenseNet121",
    "mobilenet_v3_small": "MobileNetV3Small",
    "mobilenet_v3_large": "MobileNetV3Large",
    "efficientnetv2_b0": "EfficientNetV2B0",
    "efficientnetv2_s": "EfficientNetV2S",
    "convnext_tiny": "ConvNeXtTiny",
}

# keras.applications' ResNet and DenseNet take preprocessed images; kerazoo's
# normalize inside unless told not to.
NO_PREPROCESSING = ("resnet50", "densenet121")


def twin_options(name):
    """The `create_model` options that make kerazoo's `name` the network that
    keras.applications builds: those its ported ImageNet weights use
    (`kerazoo.weights.MANIFEST`; for ResNet-50, v1, strided in a stage's
    first 1x1 convolution, where kerazoo's default is v1.5, strided in the 3x3
    with 6% more FLOPs, and Keras's batch-norm epsilon), and no preprocessing
    inside the model where Keras has none."""
    options = dict(find_weights(name, "imagenet").options)
    if name in NO_PREPROCESSING:
        options["preprocessing"] = "none"
    return options


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


def ratio_table(
    rows,
    headers=("kerazoo ms", "keras ms"),
    label_width=14,
    ms_width=10,
    decimals=2,
    log=print,
):
    """Prints a header and one line per `(label, ratio record)`: both median
    times, the median ratio and its spread."""
    a, b = headers
    log(f"{'':<{label_width}} {a:>{ms_width}} {b:>{ms_width}} {'ratio':>7}  spread")
    for label, r in rows:
        log(
            f"{label:<{label_width}} {r['a_ms']:>{ms_width}.{decimals}f} "
            f"{r['b_ms']:>{ms_width}.{decimals}f} {r['ratio_median']:>7.3f}  "
            f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f}"
        )


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

    kerazoo's network is built as the same network as the twin
    (`twin_options`), so that a ratio measures the implementations, not two
    architectures."""
    keras.utils.set_random_seed(0)
    if source == "kerazoo":
        model = create_model(name, input_shape=(size, size, 3), **twin_options(name))
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
