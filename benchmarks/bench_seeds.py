"""A recipe over several seeds: test accuracy and wall time of each, their mean
and spread.

    python benchmarks/bench_seeds.py RECIPE [--seeds 0 1 2] [--out DIR]
        [--set KEY.PATH=VALUE ...] [--json PATH] [--quick]

Each seed is a fresh `kerazoo finetune RECIPE --restart --set seed=S --set
output_dir=OUT/seed_S` (plus every `--set`) in its own Python process, so that
its wall time is that of the command a user runs (imports, data, both stages,
the test) and no seed inherits another's state. The seed is the recipe's: it
draws the data split (and for `digits?shots=N`, which N images of each class
train), the initial head and the shuffling, so the spread is over splits as
well as over training.

Prints a markdown table (per seed: validation accuracy of the weights kept,
test accuracy, with test-time augmentation when the recipe asks for it,
training seconds and wall seconds), then the mean and standard deviation
(sample, n - 1) of each, the machine (CPU model, cores), date, versions and the
command; `--json PATH` (default `OUT/seeds.json`) keeps the numbers. `--quick`
runs the recipe with 1 epoch a stage (`--set stage1.epochs=1 --set
stage2.epochs=1` before the others) to check that it runs.
"""

import argparse
import datetime
import json
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ENTRY = "import sys; from kerazoo.cli import main; sys.exit(main(sys.argv[1:]))"


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


def _val_accuracy(report):
    """Validation accuracy of the weights the run ended with (stage 2's, or
    stage 1's when stage 2 did not train)."""
    for stage in ("stage2", "stage1"):
        section = report.get(stage) or {}
        if section.get("val_accuracy") is not None:
            return float(section["val_accuracy"])
    return None


def run_seed(recipe, seed, out, overrides, log=print):
    """One `kerazoo finetune` of `recipe` with `seed`, in a fresh process;
    its row of the table."""
    run_dir = pathlib.Path(out) / f"seed_{seed}"
    args = ["finetune", str(recipe), "--restart"]
    for item in [*overrides, f"seed={seed}", f"output_dir={run_dir}"]:
        args += ["--set", item]
    log_path = pathlib.Path(out) / f"seed_{seed}.log"
    start = time.perf_counter()
    with open(log_path, "w") as file:
        done = subprocess.run(
            [sys.executable, "-c", ENTRY, *args],
            stdout=file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    wall = time.perf_counter() - start
    if done.returncode:
        tail = log_path.read_text().splitlines()[-15:]
        raise SystemExit(
            f"seed {seed}: kerazoo finetune exited {done.returncode} "
            f"(log {log_path}):\n" + "\n".join(tail)
        )
    report = json.loads((run_dir / "report.json").read_text())
    row = {
        "seed": seed,
        "val_accuracy": _val_accuracy(report),
        "test_accuracy": float(report["test_accuracy"]),
        "tta_test_accuracy": (report.get("tta") or {}).get("test_accuracy"),
        "training_seconds": float(report["seconds"]),
        "wall_seconds": wall,
        "final_weights": report.get("final_weights"),
        "output_dir": str(run_dir),
    }
    log(
        f"seed {seed}: test accuracy {row['test_accuracy']:.4f}, val "
        f"{row['val_accuracy']:.4f}, {wall:.0f} s wall"
    )
    return row


def _fmt(value, digits=4):
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows, summary):
    tta = any(r["tta_test_accuracy"] is not None for r in rows)
    head = ["seed", "val accuracy", "test accuracy"]
    head += ["test accuracy, TTA"] if tta else []
    head += ["training s", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + " ---: |" * len(head)]

    def line(label, r, seconds_digits):
        cells = [label, _fmt(r["val_accuracy"]), _fmt(r["test_accuracy"])]
        cells += [_fmt(r["tta_test_accuracy"])] if tta else []
        cells += [
            _fmt(r["training_seconds"], seconds_digits),
            _fmt(r["wall_seconds"], seconds_digits),
        ]
        return "| " + " | ".join(cells) + " |"

    for r in rows:
        lines.append(line(str(r["seed"]), r, 0))
    mean = {k: v[0] for k, v in summary.items()}
    std = {k: v[1] for k, v in summary.items()}
    lines.append(line("mean", mean, 0))
    lines.append(line("std", std, 1))
    return "\n".join(lines)


def main(argv=None):
    from kerazoo.bench import machine

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="a recipe file, e.g. recipes/digits_10shot.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="a recipe override for every seed (repeatable)",
    )
    parser.add_argument("--out", help="run folders (default runs/seeds/RECIPE_NAME)")
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--quick", action="store_true", help="1 epoch a stage")
    args = parser.parse_args(argv)
    recipe = pathlib.Path(args.recipe)
    out = pathlib.Path(args.out or pathlib.Path("runs") / "seeds" / recipe.stem)
    out.mkdir(parents=True, exist_ok=True)
    overrides = (
        ["stage1.epochs=1", "stage2.epochs=1"] if args.quick else []
    ) + args.overrides
    command = shlex.join(
        ["python", "benchmarks/bench_seeds.py", *(argv if argv else sys.argv[1:])]
    )
    started = datetime.datetime.now().astimezone()
    rows = [run_seed(recipe, s, out, overrides) for s in args.seeds]
    keys = ("val_accuracy", "test_accuracy", "tta_test_accuracy")
    keys += ("training_seconds", "wall_seconds")
    summary = {k: _mean_std([r[k] for r in rows]) for k in keys}
    info = machine()
    print(f"\n{recipe} over seeds {' '.join(map(str, args.seeds))}")
    print(table(rows, summary))
    mean, std = summary["test_accuracy"]
    print(f"\ntest accuracy {mean:.4f} +- {std:.4f} (mean +- std of {len(rows)} seeds)")
    versions = ", ".join(
        f"{k} {info[k]}" for k in ("python", "tensorflow", "keras") if k in info
    )
    print(
        f"machine: {info['cpu']}, {info['cpus']} cores; {versions}; backend "
        f"{info['backend']}; {started:%Y-%m-%d %H:%M %Z}"
    )
    print(f"command: {command}")
    result = {
        "recipe": str(recipe),
        "seeds": args.seeds,
        "overrides": overrides,
        "date": started.isoformat(timespec="seconds"),
        "command": command,
        "machine": info,
        "quick": args.quick,
        "rows": rows,
        "summary": {k: {"mean": m, "std": s} for k, (m, s) in summary.items()},
    }
    json_path = pathlib.Path(args.json) if args.json else out / "seeds.json"
    json_path.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
