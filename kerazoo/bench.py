"""`kerazoo bench`: runs the A/B benchmarks of `kerazoo.benchmarks` in one
process and checks each ratio against its target (issue targets, as ratios of
kerazoo's time to the reference's)."""

import importlib
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

# The source checkout's scripts: those of the suite run `kerazoo.benchmarks`;
# the others (gpu.py, compiled_cost.py, ...) exist only there.
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

# name -> (module, target ratio (one for all its ratios, a dict by label, or
# None), what it is about, whether it takes --jit)
SUITE = {
    "normalization": (
        "kerazoo.benchmarks.normalization",
        1.05,
        "BatchNormalization vs Keras's",
        True,
    ),
    "optimizers": (
        "kerazoo.benchmarks.optimizers",
        1.10,
        "optimizer apply vs Keras's",
        True,
    ),
    "zoo": ("kerazoo.benchmarks.zoo", 1.05, "zoo models vs keras.applications", True),
    "scaling": (
        "kerazoo.benchmarks.scaling",
        None,
        "efficientnet_b0 step time and utilisation",
        True,
    ),
    "pipeline": (
        "kerazoo.benchmarks.pipeline",
        {
            "pipeline alone vs training": 0.5,
            "fit on the pipeline vs in memory": 1.10,
        },
        "the input pipeline vs the training it feeds",
        True,
    ),
    "stage1": (
        "kerazoo.benchmarks.stage1",
        {"cached vs uncached stage 1": 0.2},
        "stage 1 on cached features vs the frozen body every epoch",
        False,
    ),
    "tuner": (
        "kerazoo.benchmarks.tuner",
        0.15,
        "keras-tuner's share of a search",
        False,
    ),
    # Served at least 1.2x faster than the Keras model: a time ratio of 1/1.2.
    "serving": (
        "kerazoo.benchmarks.serving",
        {
            f"{model} served vs Keras, batch {batch}": round(1 / 1.2, 3)
            for model in ("efficientnet_b0", "resnet50")
            for batch in (1, 16)
        },
        "the served SavedModel (batch norms folded, weights frozen) vs the Keras model",
        False,
    ),
}


def load_benchmark(script):
    """A benchmark's module, by the name of its script in `benchmarks/`:
    `bench_NAME` of the suite is `kerazoo.benchmarks.NAME` (installed with the
    package); any other script is read from the source checkout."""
    name = script.removeprefix("bench_")
    if name in SUITE:
        return importlib.import_module(SUITE[name][0])
    if not (BENCHMARKS / f"{script}.py").exists():
        raise FileNotFoundError(
            f"{BENCHMARKS / script}.py not found: the benchmarks outside "
            f"`kerazoo bench` ({', '.join(SUITE)}) run from a source checkout "
            "(its benchmarks/ folder)"
        )
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(script, BENCHMARKS / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ratios(name, results):
    """(label, ratio record) pairs of a benchmark's results."""
    if name in ("normalization", "pipeline", "stage1", "tuner", "serving"):
        return list(results.items())
    if name == "optimizers":
        return [(f"{rule} vs Keras", r) for rule, r in results["versus_keras"].items()]
    if name == "zoo":
        return [
            (f"{model} {kind}", r[kind])
            for model, r in results.items()
            for kind in ("train", "predict")
        ]
    return []


def machine():
    import keras

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in f if "model name" in line),
                cpu,
            )
    except OSError:
        pass
    versions = {"keras": keras.__version__, "backend": keras.backend.backend()}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        **versions,
    }


def run(names=None, quick=False, jit=False, json_path=None, log=print):
    """Runs the named benchmarks (all by default); returns
    `{"machine", "results", "targets"}` and writes it to `json_path`."""
    names = names or list(SUITE)
    unknown = [n for n in names if n not in SUITE]
    if unknown:
        raise ValueError(
            f"Unknown benchmark {unknown[0]!r}. Benchmarks: {', '.join(SUITE)}"
        )
    results, targets = {}, []
    for name in names:
        module, target, about, takes_jit = SUITE[name]
        log(f"\n=== {name}: {about}")
        argv = (["--quick"] if quick else []) + (["--jit"] if jit and takes_jit else [])
        results[name] = importlib.import_module(module).main(argv)
        for label, r in _ratios(name, results[name]):
            limit = target.get(label) if isinstance(target, dict) else target
            if limit is None:
                continue
            targets.append(
                {
                    "benchmark": name,
                    "what": label,
                    "ratio": r["ratio_median"],
                    "spread": [r["ratio_min"], r["ratio_max"]],
                    "target": limit,
                    "holds": r["ratio_median"] <= limit,
                }
            )
    out = {
        "machine": machine(),
        "quick": quick,
        "jit_compile": jit,
        "results": results,
        "targets": targets,
    }
    log("\n=== targets (kerazoo's time / the reference's)")
    for t in targets:
        mark = "holds" if t["holds"] else "MISSED"
        log(
            f"  {t['benchmark']:13s} {t['what']:34s} {t['ratio']:6.3f} "
            f"({t['spread'][0]:.3f}-{t['spread'][1]:.3f}) "
            f"target <= {t['target']}: {mark}"
        )
    held = sum(t["holds"] for t in targets)
    log(f"  {held} of {len(targets)} targets hold")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(out, f, indent=2, default=float)
        log(f"Wrote {json_path}")
    return out
