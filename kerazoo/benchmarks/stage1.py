"""Stage 1 on cached body features against running the frozen body every
epoch: the quickstart recipe's stage 1 (stage 2 off), run alternately with
`stage1.cache_features` true and false, each run in a fresh output folder.
Reports the time ratio (cached over uncached: at most 0.2, i.e. 5x faster) and
both runs' test accuracy. Then the cached stage's one pass over the images alone:
the body with its batch norms folded (what stage 1 runs) against the body as it
is, alternated, each pass over all three splits.

    kerazoo bench stage1 [--quick]
    python benchmarks/bench_stage1.py [--quick] [--epochs N] [--repeats N] [--json PATH]
"""

import argparse
import contextlib
import io
import tempfile
from importlib import resources
from pathlib import Path

import keras

from kerazoo.benchmarks.timing import compare
from kerazoo.benchmarks.timing import ratio_record
from kerazoo.benchmarks.timing import write_json
from kerazoo.data.pipeline import image_pipeline
from kerazoo.finetune import build
from kerazoo.finetune import run
from kerazoo.finetune.engine import body_features
from kerazoo.finetune.engine import load_recipe_data
from kerazoo.recipes import load_recipe

# recipes/quickstart.yaml, shipped with the package.
RECIPE = resources.files("kerazoo.benchmarks") / "recipes" / "quickstart.yaml"


def stage1(recipe_path, overrides, cached):
    with tempfile.TemporaryDirectory() as folder:
        recipe = load_recipe(
            recipe_path,
            [
                *overrides,
                "stage2.epochs=0",
                f"stage1.cache_features={str(cached).lower()}",
                f"output_dir={folder}",
            ],
        )
        keras.utils.clear_session()
        with contextlib.redirect_stdout(io.StringIO()):  # Keras's epoch lines
            report = run(recipe, log=lambda line: None)
    s1 = report["stage1"]
    return {
        "seconds": s1["seconds"] + s1.get("feature_seconds", 0.0),
        "feature_seconds": s1.get("feature_seconds", 0.0),
        "test_accuracy": report["test_accuracy"],
    }


def feature_pass(recipe_path, overrides, repeats):
    """The feature pass with the folded body against the body as it is."""
    recipe = load_recipe(recipe_path, overrides)
    keras.utils.clear_session()
    data = load_recipe_data(recipe)
    parts = build(recipe, data.num_classes)
    size = recipe.model.image_size
    pipelines = [
        image_pipeline(data, split, size, 64, cache=False)
        for split in ("train", "validation", "test")
    ]
    folded, plain = {"features": parts["features"]}, {"features": parts["features"]}

    def one_pass(side, fold):
        return lambda: [body_features(side, p, fold=fold)[0] for p in pipelines]

    result = compare(one_pass(folded, True), one_pass(plain, False), 1, repeats, 1)
    result["images"] = sum(data.sizes.values())
    result["folding"] = folded["_folding"]
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default=None, help="default: the quickstart")
    parser.add_argument("--quick", action="store_true", help="small and short")
    parser.add_argument("--epochs", type=int, default=None, help="default: 10")
    parser.add_argument("--repeats", type=int, default=None, help="default: 7")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", default=None, help="also write results here")
    args = parser.parse_args(argv)
    recipe = args.recipe or str(RECIPE)
    epochs = args.epochs or (2 if args.quick else 10)
    repeats = args.repeats or (1 if args.quick else 7)
    overrides = [f"stage1.epochs={epochs}", *args.set]
    if args.quick:
        overrides += ["model.input_size=64", "data.uri=digits?invert=true&shots=20"]
    print(
        f"stage 1 of {Path(recipe).name} ({epochs} epochs; {' '.join(args.set)}), "
        f"cached vs frozen body every epoch, {repeats} alternating rounds",
        flush=True,
    )
    rounds = []
    for i in range(repeats):
        cached = stage1(recipe, overrides, True)
        uncached = stage1(recipe, overrides, False)
        rounds.append((cached, uncached))
        print(
            f"  round {i + 1}: cached {cached['seconds']:.1f} s (features "
            f"{cached['feature_seconds']:.1f} s), test accuracy "
            f"{cached['test_accuracy']:.4f}; uncached {uncached['seconds']:.1f} s, "
            f"{uncached['test_accuracy']:.4f}",
            flush=True,
        )
    ratios = [c["seconds"] / u["seconds"] for c, u in rounds]
    result = {
        **ratio_record(
            ratios,
            [c["seconds"] for c, _ in rounds],
            [u["seconds"] for _, u in rounds],
        ),
        "test_accuracy": {
            "cached": [c["test_accuracy"] for c, _ in rounds],
            "uncached": [u["test_accuracy"] for _, u in rounds],
        },
    }
    print(
        f"  cached / uncached time: {result['ratio_median']:.3f} "
        f"[{result['ratio_min']:.3f}-{result['ratio_max']:.3f}], "
        f"{1 / result['ratio_median']:.1f}x faster"
    )
    print("feature pass, folded body vs the body as it is ...", flush=True)
    passes = feature_pass(recipe, overrides, repeats)
    print(
        f"  {passes['images']} images, {passes['folding']}: "
        f"{passes['a_ms'] / 1e3:.2f} s vs {passes['b_ms'] / 1e3:.2f} s, ratio "
        f"{passes['ratio_median']:.3f} [{passes['ratio_min']:.3f}-"
        f"{passes['ratio_max']:.3f}], {1 / passes['ratio_median']:.2f}x faster"
    )
    results = {
        "cached vs uncached stage 1": result,
        "feature pass folded vs unfolded": passes,
    }
    if args.json:
        write_json(args.json, results, epochs=epochs)
    return results


if __name__ == "__main__":
    main()
