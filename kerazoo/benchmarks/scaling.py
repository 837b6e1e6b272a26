"""How efficientnet_b0's training step scales with batch size and image size,
and what share of the machine's practical peak it reaches: FLOP/s achieved
(3x the forward FLOPs per image for a training step, TensorFlow's profiler's
count) against a square float32 matmul measured in the same run.

    kerazoo bench scaling [--quick]
    python benchmarks/bench_scaling.py [--quick] [--jit] [--json PATH] [--plot PNG]
"""

import argparse
import json
import os
import platform
import statistics
import time

import keras
import numpy as np

from kerazoo.models import create_model
from kerazoo.models.analysis import flops


def matmul_gflops(size, repeats):
    """Measured GFLOP/s of a square float32 matmul: the practical peak."""
    a = keras.random.normal((size, size), seed=0)
    b = keras.random.normal((size, size), seed=1)
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def step_ms(model, batch, size, steps, repeats):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, model.outputs[0].shape[-1], batch)
    for _ in range(2):
        model.train_on_batch(x, y)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        times.append((time.perf_counter() - start) / steps)
    return 1e3 * statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grid, short")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True")
    parser.add_argument("--model", default="efficientnet_b0")
    parser.add_argument("--batches", nargs="*", type=int, default=None)
    parser.add_argument("--sizes", nargs="*", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write results here")
    parser.add_argument("--plot", default=None, help="write a PNG plot here")
    args = parser.parse_args(argv)
    batches = args.batches or ([1, 4] if args.quick else [1, 8, 32])
    sizes = args.sizes or ([32, 64] if args.quick else [64, 128, 224])
    repeats = args.repeats or (2 if args.quick else 5)

    peak = matmul_gflops(512 if args.quick else 2048, repeats=3 if args.quick else 10)
    print(f"matmul peak: {peak:.1f} GFLOP/s", flush=True)
    rows = []
    for size in sizes:
        keras.utils.clear_session()
        model = create_model(args.model, input_shape=(size, size, 3))
        forward = flops(model)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            jit_compile=args.jit,
        )
        for batch in batches:
            ms = step_ms(
                model, batch, size, steps=2 if args.quick else 3, repeats=repeats
            )
            achieved = 3 * forward * batch / (ms / 1e3) / 1e9
            rows.append(
                {
                    "size": size,
                    "batch": batch,
                    "step_ms": ms,
                    "images_per_s": batch / (ms / 1e3),
                    "gflops_per_s": achieved,
                    "share_of_peak": achieved / peak,
                }
            )
            print(
                f"{args.model} {size}x{size} batch {batch:3d}: {ms:9.1f} ms/step, "
                f"{rows[-1]['images_per_s']:7.1f} img/s, {achieved:6.1f} GFLOP/s "
                f"({achieved / peak:.1%} of the matmul peak)",
                flush=True,
            )
    setting = (
        f"backend={keras.backend.backend()} jit_compile={args.jit} model={args.model}"
    )
    print(f"({setting}; machine: {platform.machine()}, {os.cpu_count()} CPUs)")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for size in sizes:
            r = [row for row in rows if row["size"] == size]
            b = [row["batch"] for row in r]
            axes[0].plot(b, [row["images_per_s"] for row in r], "o-", label=f"{size}px")
            axes[1].plot(
                b, [100 * row["share_of_peak"] for row in r], "o-", label=f"{size}px"
            )
        axes[0].set(xscale="log", xlabel="batch", ylabel="images/s", title="throughput")
        axes[1].set(
            xscale="log", xlabel="batch", ylabel="% of matmul peak", title="utilisation"
        )
        for ax in axes:
            ax.legend()
        fig.savefig(args.plot, dpi=80, bbox_inches="tight")
        plt.close(fig)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"setting": setting, "matmul_gflops": peak, "results": rows},
                f,
                indent=2,
            )
    return {"matmul_gflops": peak, "rows": rows}


if __name__ == "__main__":
    main()
