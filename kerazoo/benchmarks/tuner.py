"""keras-tuner's overhead in a kerazoo search: the wall time of the search
minus the sum of the trials' `fit` times, as a share of the search (target:
at most 0.15). The digits search recipe, run several times in fresh folders.

    kerazoo bench tuner [--quick]
    python benchmarks/bench_tuner.py [--quick] [--trials N] [--repeats N] [--json PATH]
"""

import argparse
import json
import tempfile
from importlib import resources
from pathlib import Path

import keras

from kerazoo.benchmarks.timing import ratio_record
from kerazoo.benchmarks.timing import write_json
from kerazoo.recipes import load_recipe
from kerazoo.tuning import search

# recipes/tune_quickstart.yaml, shipped with the package.
RECIPE = resources.files("kerazoo.benchmarks") / "recipes" / "tune_quickstart.yaml"


def one_search(recipe_path, overrides):
    with tempfile.TemporaryDirectory() as folder:
        recipe = load_recipe(recipe_path, [*overrides, f"output_dir={folder}"])
        keras.utils.clear_session()
        search(recipe, log=lambda line: None)
        return json.loads((Path(folder) / "timing.json").read_text())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default=str(RECIPE))
    parser.add_argument("--quick", action="store_true", help="few trials, once")
    parser.add_argument("--trials", type=int, default=None, help="default: 10")
    parser.add_argument("--epochs", type=int, default=None, help="per trial")
    parser.add_argument("--repeats", type=int, default=None, help="default: 3")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", default=None, help="also write results here")
    args = parser.parse_args(argv)
    trials = args.trials or (3 if args.quick else 10)
    repeats = args.repeats or (1 if args.quick else 3)
    space = f"search.max_trials={trials}"
    overrides = [*args.set, space]
    if args.epochs:
        overrides.append(f"search.epochs={args.epochs}")
    print(
        f"{Path(args.recipe).name}: {trials} trials per search, {repeats} searches",
        flush=True,
    )
    runs = []
    for i in range(repeats):
        t = one_search(args.recipe, overrides)
        runs.append(t)
        print(
            f"  search {i + 1}: {t['search_seconds']:.1f} s, fitting "
            f"{t['fit_seconds']:.1f} s, overhead {t['overhead_share']:.1%}",
            flush=True,
        )
    shares = [t["overhead_share"] for t in runs]
    result = {
        **ratio_record(
            shares,
            [t["overhead_seconds"] for t in runs],
            [t["search_seconds"] for t in runs],
        ),
        "trials": trials,
    }
    print(
        f"  keras-tuner's share of the search: {result['ratio_median']:.3f} "
        f"[{result['ratio_min']:.3f}-{result['ratio_max']:.3f}]"
    )
    results = {"tuner overhead share": result}
    if args.json:
        write_json(args.json, results, runs=runs)
    return results


if __name__ == "__main__":
    main()
