"""kerazoo's efficientnet_b0, resnet50, densenet121, MobileNetV3 Small and Large and
EfficientNetV2 B0 and S against keras.applications' (same input size,
weights=None, 1,000 classes): a training step and a prediction,
timed alternately after warm-up, with `jit_compile` the same on both sides.

    kerazoo bench zoo [--quick]
    python benchmarks/bench_zoo.py [--quick] [--jit] [--json PATH]
"""

import argparse
import os
import platform

import keras
import numpy as np

from kerazoo.benchmarks.timing import APPLICATIONS
from kerazoo.benchmarks.timing import compare
from kerazoo.benchmarks.timing import ratio_table
from kerazoo.benchmarks.timing import write_json
from kerazoo.benchmarks.timing import zoo_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small images, short")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True")
    parser.add_argument("--models", nargs="*", default=list(APPLICATIONS))
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write results here")
    args = parser.parse_args(argv)
    size = args.size or (64 if args.quick else 224)
    batch = args.batch or (4 if args.quick else 16)
    steps = args.steps or (2 if args.quick else 3)
    repeats = args.repeats or (3 if args.quick else 7)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 1000, batch)

    results = {}
    for name in args.models:
        print(f"timing {name} ...", flush=True)
        keras.utils.clear_session()
        ours = zoo_model(name, size, "kerazoo", args.jit)
        theirs = zoo_model(name, size, "keras.applications", args.jit)
        results[name] = {
            "params": [ours.count_params(), theirs.count_params()],
            "train": compare(
                lambda ours=ours: ours.train_on_batch(x, y),
                lambda theirs=theirs: theirs.train_on_batch(x, y),
                steps,
                repeats,
            ),
            "predict": compare(
                lambda ours=ours: ours.predict_on_batch(x),
                lambda theirs=theirs: theirs.predict_on_batch(x),
                steps,
                repeats,
            ),
        }

    setting = (
        f"backend={keras.backend.backend()} jit_compile={args.jit} input={size}x{size} "
        f"batch={batch} steps={steps} repeats={repeats}"
    )
    print(f"\nkerazoo vs keras.applications ({setting})")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs")
    rows = [
        (f"{name} {kind}", r[kind])
        for name, r in results.items()
        for kind in ("train", "predict")
    ]
    ratio_table(rows, label_width=17, ms_width=11, decimals=1)
    if args.json:
        write_json(args.json, results, setting=setting)
    return results


if __name__ == "__main__":
    main()
