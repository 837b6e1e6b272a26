"""The input pipeline against the model it feeds: kerazoo's `image_pipeline`
(JPEG decode, resize, augment, batch, prefetch; no cache, so every epoch
decodes again) over a folder of JPEGs, timed alternately against

1. an epoch of training a model (efficientnet_lite0, all layers) on the same images held
   in memory: the pipeline alone should take at most half as long (2x faster);
2. the same epoch of training fed by the pipeline (`fit` on the dataset): at most
   10% slower than on the in-memory tensors.

    kerazoo bench pipeline [--quick]
    python benchmarks/bench_pipeline.py [--quick] [--jit] [--json PATH]
"""

import argparse
import tempfile

import keras
import numpy as np

from kerazoo.benchmarks.timing import compare
from kerazoo.benchmarks.timing import write_json
from kerazoo.data import load_data
from kerazoo.data.pipeline import image_pipeline
from kerazoo.models import create_model
from kerazoo.recipes import Augment


def write_jpegs(folder, count, side, classes=4, seed=0):
    """`count` photo-like JPEGs (smooth colour fields with edges), `side` px."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.uniform(0, 255, (6, 6, 3)).astype("uint8")
        image = Image.fromarray(coarse).resize((side, side), Image.BICUBIC)
        pixels = np.asarray(image).copy()
        y0, x0 = rng.integers(0, side // 2, 2)
        pixels[y0 : y0 + side // 3, x0 : x0 + side // 3] = rng.integers(0, 255, 3)
        target = folder / f"class{i % classes}"
        target.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(target / f"{i:05d}.jpg", quality=90)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few images, short")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--side", type=int, default=320, help="JPEG side, px")
    parser.add_argument("--size", type=int, default=None, help="model input, px")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write results here")
    args = parser.parse_args(argv)
    count = args.images or (64 if args.quick else 320)
    size = args.size or (64 if args.quick else 112)
    repeats = args.repeats or (2 if args.quick else 7)

    with tempfile.TemporaryDirectory() as folder:
        from pathlib import Path

        write_jpegs(Path(folder), count, args.side)
        data = load_data(f"folder:{folder}?validation=0.1&test=0.1")
        augment = Augment(rotation=0.03, zoom=0.1, translation=0.08, flip="horizontal")
        dataset = image_pipeline(
            data,
            "train",
            (size, size),
            args.batch,
            training=True,
            augment=augment,
            cache=False,
        )
        # The same images, decoded and resized once, in memory.
        batches = list(image_pipeline(data, "train", (size, size), 64))
        x = np.concatenate([images for images, _ in batches])
        y = np.concatenate([labels for _, labels in batches])
        n = len(y)

        keras.utils.set_random_seed(0)
        model = create_model(
            args.model,
            num_classes=data.num_classes,
            input_shape=(size, size, 3),
            classifier_activation=None,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(1e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=args.jit,
        )

        def pipeline_epoch():
            batch = None
            for batch in dataset:  # noqa: B007  (iterating is the work)
                pass
            return batch[0]

        def fit(source):
            if source == "memory":
                h = model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)
            else:
                h = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
            return np.float32(h.history["loss"][-1])

        print(
            f"{n} training images ({args.side}px JPEGs -> {size}px), batch "
            f"{args.batch}, {args.model}, jit_compile={args.jit}; "
            f"{repeats} alternating rounds",
            flush=True,
        )
        alone = compare(pipeline_epoch, lambda: fit("memory"), 1, repeats, warmup=1)
        fed = compare(
            lambda: fit("pipeline"), lambda: fit("memory"), 1, repeats, warmup=1
        )

    results = {
        "pipeline alone vs training": alone,
        "fit on the pipeline vs in memory": fed,
    }
    for what, r in results.items():
        print(
            f"  {what:34s} ratio {r['ratio_median']:.3f} "
            f"[{r['ratio_min']:.3f}-{r['ratio_max']:.3f}]  "
            f"{r['a_ms']:.0f} ms vs {r['b_ms']:.0f} ms per epoch"
        )
    images_per_s = {
        "pipeline": n / (alone["a_ms"] / 1e3),
        "training in memory": n / (alone["b_ms"] / 1e3),
        "training on the pipeline": n / (fed["a_ms"] / 1e3),
    }
    for what, rate in images_per_s.items():
        print(f"  {what:34s} {rate:8.1f} images/s")
    if args.json:
        write_json(
            args.json,
            results,
            images=n,
            size=size,
            jit_compile=args.jit,
            images_per_s=images_per_s,
        )
    return results


if __name__ == "__main__":
    main()
