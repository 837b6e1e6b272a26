"""GPU throughput of kerazoo models, against the card's measured matmul peak and
against keras.applications.

Backend-agnostic (run it with `KERAS_BACKEND=jax` on a machine without
TensorFlow). For efficientnet_b0 and resnet50 at 224x224 (by default;
mobilenet_v3_small too), each built as the
same network as keras.applications' (`kerazoo.benchmarks.timing.zoo_model`), it
measures training and inference images/s in float32 and mixed bfloat16
(checking that each model really computes in the dtype asked for), converts
them to FLOP/s with the forward-pass FLOPs that TensorFlow's profiler counts (a
training step counted as 3 forward passes), and divides by the matrix-multiply
peak measured in the same run. It then times kerazoo's training step against
the keras.applications model of the same name, alternating the two.

    KERAS_BACKEND=jax python benchmarks/gpu.py --out results/
    KERAS_BACKEND=jax python benchmarks/gpu.py --quick --no-jit   # minutes, on a CPU

Every result is appended to `OUT/gpu.jsonl` as soon as it is measured, so an
interrupted run keeps what it finished.
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import keras
import numpy as np

from kerazoo._compat import sublayers
from kerazoo.benchmarks.timing import compare
from kerazoo.benchmarks.timing import zoo_model

# One 1-image forward pass at 224x224 of the networks timed here (the twins of
# keras.applications' that `kerazoo.benchmarks.timing.zoo_model` builds:
# ResNet-50 v1, where kerazoo's default v1.5 has 8.21), a multiply-add counted as 2
# (`kerazoo.models.analysis.flops`, TensorFlow's profiler).
FORWARD_GFLOPS = {"efficientnet_b0": 0.80, "resnet50": 7.75, "mobilenet_v3_small": 0.12}
MODELS = tuple(FORWARD_GFLOPS)


def _sync(out):
    value = out[0] if isinstance(out, (list, tuple)) else out
    # float32 first: TensorFlow cannot hand a bfloat16 scalar to NumPy.
    keras.ops.convert_to_numpy(keras.ops.cast(keras.ops.sum(value), "float32"))


def matmul_peak(dtype, size, repeats):
    """Measured TFLOP/s of one square matmul (the practical peak)."""
    a = keras.random.normal((size, size), dtype=dtype, seed=0)
    b = keras.random.normal((size, size), dtype=dtype, seed=1)
    _sync(keras.ops.matmul(a, b))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            out = keras.ops.matmul(a, b)
        _sync(out)
        times.append((time.perf_counter() - start) / 10)
    return 2 * size**3 / statistics.median(times) / 1e12


def _batch(batch, size):
    # On the device once: the timed steps move no images from the host.
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 1000, (batch,)).astype("int32")
    return keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)


def compute_dtypes(model):
    """The compute dtypes of the layers that hold weights (what the model
    really runs in, whatever policy was asked for)."""
    return sorted({x.compute_dtype for x in sublayers(model) if x.weights})


def _model(name, size, policy, source="kerazoo", jit=True):
    # clear_session() resets the global policy to float32: set it after.
    keras.utils.clear_session()
    keras.config.set_dtype_policy(policy)
    try:
        model = zoo_model(name, size, source, jit=jit)
    finally:
        keras.config.set_dtype_policy("float32")
    expected = keras.DTypePolicy(policy).compute_dtype
    # Some layers of a mixed-precision model may compute in float32.
    if expected not in compute_dtypes(model):
        raise RuntimeError(
            f"{name} was asked for {policy} but computes in {compute_dtypes(model)}"
        )
    return model


def throughput(name, size, batch, policy, steps, repeats, jit=True):
    model = _model(name, size, policy, jit=jit)
    x, y = _batch(batch, size)
    out = {}
    for kind, fn in (
        ("train", lambda: model.train_on_batch(x, y)),
        ("inference", lambda: model.predict_on_batch(x)),
    ):
        for _ in range(3):
            _sync(fn())
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                result = fn()
            _sync(result)
            times.append((time.perf_counter() - start) / steps)
        step = statistics.median(times)
        out[kind] = {"step_ms": 1e3 * step, "images_per_s": batch / step}
    out["compute_dtypes"] = compute_dtypes(model)
    return out


def versus_applications(name, size, batch, steps, repeats, jit=True):
    x, y = _batch(batch, size)
    ours = _model(name, size, "float32", jit=jit)
    theirs = _model(name, size, "float32", source="keras.applications", jit=jit)
    return compare(
        lambda: ours.train_on_batch(x, y),
        lambda: theirs.train_on_batch(x, y),
        steps=steps,
        repeats=repeats,
    )


def _device():
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}: {getattr(device, 'device_kind', device)}"
    return f"{backend} on {platform.processor() or platform.machine()}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench-gpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--compare-repeats",
        type=int,
        default=15,
        help="alternated rounds of kerazoo vs keras.applications",
    )
    parser.add_argument("--matmul", type=int, default=8192)
    parser.add_argument(
        "--models",
        nargs="+",
        choices=MODELS,
        default=["efficientnet_b0", "resnet50"],
        metavar="NAME",
    )
    parser.add_argument(
        "--no-jit", dest="jit", action="store_false", help="jit_compile=False"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks the script runs"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.steps, args.repeats, args.matmul = 2, 32, 1, 1, 256
        args.compare_repeats = 1
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "gpu.jsonl"

    def record(**row):
        row = {"device": _device(), "backend": keras.backend.backend(), **row}
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    record(kind="start", keras=keras.__version__, argv=sys.argv[1:], pid=os.getpid())
    peaks = {}
    for dtype in ("float32", "bfloat16"):
        peaks[dtype] = matmul_peak(dtype, args.matmul, max(3, args.repeats))
        record(kind="matmul_peak", dtype=dtype, size=args.matmul, tflops=peaks[dtype])
    scale = (args.size / 224) ** 2
    for name in args.models:
        for policy in ("float32", "mixed_bfloat16"):
            result = throughput(
                name, args.size, args.batch, policy, args.steps, args.repeats, args.jit
            )
            dtypes = result.pop("compute_dtypes")
            peak = peaks["float32" if policy == "float32" else "bfloat16"]
            for kind, numbers in result.items():
                passes = 3 if kind == "train" else 1
                tflops = (
                    numbers["images_per_s"]
                    * passes
                    * FORWARD_GFLOPS[name]
                    * scale
                    / 1e3
                )
                record(
                    kind=kind,
                    model=name,
                    policy=policy,
                    compute_dtypes=dtypes,
                    jit_compile=args.jit,
                    batch=args.batch,
                    size=args.size,
                    **numbers,
                    tflops=tflops,
                    utilisation=tflops / peak,
                )
    for name in args.models:
        ratio = versus_applications(
            name, args.size, args.batch, args.steps, args.compare_repeats, args.jit
        )
        record(kind="vs_keras_applications", model=name, batch=args.batch, **ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
