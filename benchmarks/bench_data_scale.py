"""The data layer at scale: peak memory, time to the first batch, the input
pipeline's throughput and a short fine-tuning of EfficientNet-Lite0, for
folders of 1,000 to 100,000 JPEGs, with the decoded images cached on disk or
not at all.

    python benchmarks/bench_data_scale.py [--sizes 1000 10000 100000]
        [--modes disk none] [--cache-dir DIR] [--out DIR] [--quick]

The data: 10 class folders of 192x192 JPEGs (smooth colour gradients from a
colour per class, plus Gaussian noise: 10-17 KB each, as photos of that size
are). Each class has at most 100 distinct images, encoded once (PIL, the
classes shared among one process a core) and written repeatedly under different
names, which makes 100,000 files in well under a minute; every file is still
read and decoded on its own. A folder is made once, in `--cache-dir/N/`
(default `~/.cache/kerazoo/bench_data_scale/N/`), and reused when its marker
file, written last, says it is complete.

Each size and cache mode runs in a fresh Python process, so that its peak
resident memory (`ru_maxrss`) is its own:

1. `load_data("folder:...?validation=0.1&test=0.1")` (listing, no decoding) and
   the training pipeline (`Pipelines`, batch 32, flip + rotation + zoom, no
   deterministic order) up to its first batch: the time to first batch counts
   from the start of `load_data`;
2. the pipeline alone: images/s over the next 20 batches (all from the first
   epoch, decoded from the JPEGs, at every size here);
3. fine-tuning through `kerazoo.finetune.build`'s parts, the recipe
   `recipes/tf_flowers_efficientnet_lite0.yaml` (ImageNet weights) at 128 px on
   this data: stage 1 the frozen body (`freeze`, the `frozen` model), stage 2
   every body layer (`unfreeze(body, "all", "frozen")`, the whole model), each a
   fresh optimizer and `fit(steps_per_epoch=20, epochs=1)` with augmentation
   and `jit_compile=False`; images/s from the end of the first step (tracing)
   to the end of the last;
4. the peak resident memory of the process.

The disk cache of each run is a new folder, removed after it: every run decodes
the same images. The JPEGs themselves are usually in the page cache (they were
just written or read), so reading them costs little next to decoding. Each row
keeps the 1-minute load average when its run began and ended (the table shows
their mean): other work on the machine lowers the images/s.

Writes `OUT/data_scale.json` (machine, date, command, versions, rows, goals) and
`OUT/data_scale.png` (peak memory and pipeline images/s against the dataset
size), and prints a markdown table and the goals:

- peak memory at the largest size at most 1.25x that at the smallest (disk and
  none);
- time to first batch at the largest size at most 30 s;
- the pipeline at least 2x as fast as stage-2 training.

`--quick` (sizes 60 and 120, 64 px, 2 steps and 2 pipeline batches) checks that
it runs; `--model` and `--weights` (a tag, or `none`) fine-tune another zoo model
(the test takes resnet20, random weights, which compiles in a fraction of the
time).
"""

import argparse
import datetime
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from kerazoo.bench import machine as kerazoo_machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SCRIPT = pathlib.Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
RECIPE = ROOT / "recipes" / "tf_flowers_efficientnet_lite0.yaml"
CLASSES = 10
SIDE = 192  # px of the generated JPEGs
DISTINCT = 100  # distinct images per class
GENERATOR = 1  # bump when the images change: folders are made again
MARKER = "complete.json"
BATCH = 32
MODES = ("memory", "disk", "none")
RSS_GROWTH = 1.25
FIRST_BATCH_S = 30.0
PIPELINE_OVER_TRAINING = 2.0


def default_cache_dir():
    return pathlib.Path.home() / ".cache" / "kerazoo" / "bench_data_scale"


# --- the data --------------------------------------------------------------


def _class_jpegs(label, count):
    """`count` encoded JPEGs of class `label` (seeded by the label): a bilinear
    gradient between four corner colours near the class's colour, plus noise."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng([GENERATOR, label])
    base = rng.uniform(40, 215, 3)
    t = np.linspace(0.0, 1.0, SIDE)
    y, x = t[:, None, None], t[None, :, None]
    out = []
    for _ in range(count):
        c = np.clip(base + rng.normal(0, 45, (4, 3)), 0, 255)
        pixels = (
            c[0] * (1 - y) * (1 - x)
            + c[1] * (1 - y) * x
            + c[2] * y * (1 - x)
            + c[3] * y * x
        )
        pixels = pixels + rng.normal(0, rng.uniform(8, 16), pixels.shape)
        buffer = io.BytesIO()
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        image.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _write_class(job):
    folder, label, count = job
    jpegs = _class_jpegs(label, min(count, DISTINCT))
    target = pathlib.Path(folder) / f"class_{label}"
    target.mkdir(parents=True, exist_ok=True)
    written = 0
    for i in range(count):
        data = jpegs[i % len(jpegs)]
        with open(target / f"{i:07d}.jpg", "wb") as f:
            f.write(data)
        written += len(data)
    return written


def _write_classes(jobs):
    """`_write_class` of every job, in one process a core, each taking every
    n-th job (a `multiprocessing` pool would need this file importable by its
    name, which `kerazoo.bench.load_benchmark` does not make it); the bytes
    written."""
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(SCRIPT),
                "--write-class",
                json.dumps(jobs[i::workers]),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    total = 0
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"writing the JPEGs failed:\n{err[-3000:]}")
        total += int(out.split()[-1])
    return total


def dataset_folder(cache_dir, size, log=print):
    """The folder of `size` JPEGs in `cache_dir/size/`, made unless complete.

    Returns:
        `(folder, marker)`: the marker's contents (`images`, `bytes`, ...).
    """
    folder = pathlib.Path(cache_dir).expanduser() / str(size)
    marker = folder / MARKER
    want = {"images": size, "classes": CLASSES, "side": SIDE, "generator": GENERATOR}
    if marker.exists():
        try:
            found = json.loads(marker.read_text())
        except ValueError:
            found = {}
        if {k: found.get(k) for k in want} == want:
            return folder, found
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    jobs = [
        (str(folder), label, size // CLASSES + (label < size % CLASSES))
        for label in range(CLASSES)
    ]
    total = _write_classes(jobs)
    seconds = time.perf_counter() - start
    found = {**want, "bytes": total, "seconds": round(seconds, 1)}
    tmp = marker.with_suffix(".partial")
    tmp.write_text(json.dumps(found))
    os.replace(tmp, marker)
    log(
        f"wrote {size:,} JPEGs ({total / size / 1e3:.1f} KB each) to {folder} "
        f"in {seconds:.1f} s"
    )
    return folder, found


# --- one run (in its own process) --------------------------------------------


def _peak_rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def run_one(spec):
    """Times one size and cache mode in this process (see the module
    docstring); returns its row."""
    import keras

    from kerazoo import optimizers
    from kerazoo.data import load_data
    from kerazoo.data.pipeline import Pipelines
    from kerazoo.finetune import build
    from kerazoo.finetune import freeze
    from kerazoo.finetune import unfreeze
    from kerazoo.recipes import load_recipe

    size = spec["image_size"]
    uri = f"folder:{spec['folder']}?validation=0.1&test=0.1"
    recipe = load_recipe(
        RECIPE,
        [
            f"model.name={spec['model']}",
            f"model.weights={spec['weights'] or 'null'}",
            f"model.input_size={size}",
            f"data.uri={uri}",
            f"data.cache={spec['mode']}",
            "data.augment={flip: horizontal, rotation: 0.05, zoom: 0.1}",
            f"stage1.batch_size={BATCH}",
            "stage1.augment=true",
            f"stage2.batch_size={BATCH}",
            "stage2.unfreeze=all",
            # Pretrained batch norms keep their statistics; a random body's
            # must learn theirs (the recipe refuses frozen with weights: null).
            f"batchnorm={'frozen' if spec['weights'] else 'train'}",
        ],
    )
    augment = recipe.data.augment
    rss_imports = _peak_rss_mib()
    load_before = os.getloadavg()[0]

    start = time.perf_counter()
    data = load_data(uri, seed=recipe.seed)
    load_s = time.perf_counter() - start
    pipelines = Pipelines(
        data,
        recipe.model.image_size,
        cache=spec["mode"],
        cache_dir=spec["disk_dir"],
        deterministic=False,
    )
    try:

        def train(seed):
            return pipelines.dataset(
                "train", BATCH, training=True, augment=augment, seed=seed
            ).repeat()

        batches = iter(train(recipe.seed))
        next(batches)[0].numpy()
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        images = 0
        for _ in range(spec["pipeline_batches"]):
            images += int(next(batches)[0].numpy().shape[0])
        pipeline_s = time.perf_counter() - start
        del batches
        rss_pipeline = _peak_rss_mib()

        keras.utils.set_random_seed(recipe.seed)
        parts = build(recipe, data.num_classes)
        body = parts["body"]
        loss = "sparse_categorical_crossentropy"

        class Steps(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.ends = []

            def on_train_batch_end(self, batch, logs=None):
                self.ends.append(time.perf_counter())

        def fit(model, stage, seed):
            model.compile(
                optimizer=optimizers.get(stage.optimizer.as_dict()),
                loss=loss,
                metrics=["accuracy"],
                jit_compile=False,
            )
            steps = Steps()
            began = time.perf_counter()
            model.fit(
                train(seed),
                steps_per_epoch=spec["steps"],
                epochs=1,
                verbose=0,
                shuffle=False,
                callbacks=[steps],
            )
            ends = steps.ends
            timed = len(ends) - 1
            rate = timed * BATCH / (ends[-1] - ends[0]) if timed else float("nan")
            return rate, ends[-1] - began

        freeze(body)
        stage1_rate, stage1_s = fit(parts["frozen"], recipe.stage1, recipe.seed)
        unfreeze(body, recipe.stage2.unfreeze, recipe.batchnorm)
        stage2_rate, stage2_s = fit(parts["model"], recipe.stage2, recipe.seed + 1)
    finally:
        pipelines.close()
    return {
        "size": spec["size"],
        "cache": spec["mode"],
        "splits": data.sizes,
        "image_size": size,
        "load_data_s": load_s,
        "first_batch_s": first_s,
        "pipeline_images": images,
        "pipeline_images_per_s": images / pipeline_s,
        "stage1_images_per_s": stage1_rate,
        "stage2_images_per_s": stage2_rate,
        "stage1_fit_s": stage1_s,
        "stage2_fit_s": stage2_s,
        "steps": spec["steps"],
        "rss_after_imports_mib": rss_imports,
        "rss_after_pipeline_mib": rss_pipeline,
        "peak_rss_mib": _peak_rss_mib(),
        # Other work on the machine slows every number down: the 1-minute
        # load average when the run began and ended.
        "load_average": [load_before, os.getloadavg()[0]],
    }


def run_child(spec):
    """`run_one(spec)` in a fresh Python process; its row."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH")) if p
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--child",
            json.dumps(spec),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(
            f"the run of {spec['size']:,} images, cache {spec['mode']} failed "
            f"(exit {proc.returncode}):\n{tail}"
        )
    return json.loads(lines[-1])


# --- the report --------------------------------------------------------------


def table(rows):
    head = (
        "| images | cache | train | load_data (s) | first batch (s) | "
        "pipeline (img/s) | stage 1 (img/s) | stage 2 (img/s) | "
        "RSS after the pipeline (MiB) | peak RSS (MiB) | load average |"
    )
    lines = [head, "|" + " --- |" * 11]
    for r in rows:
        load = sum(r["load_average"]) / len(r["load_average"])
        lines.append(
            f"| {r['size']:,} | {r['cache']} | {r['splits']['train']:,} | "
            f"{r['load_data_s']:.2f} | {r['first_batch_s']:.1f} | "
            f"{r['pipeline_images_per_s']:.0f} | {r['stage1_images_per_s']:.1f} | "
            f"{r['stage2_images_per_s']:.1f} | {r['rss_after_pipeline_mib']:,.0f} | "
            f"{r['peak_rss_mib']:,.0f} | {load:.1f} |"
        )
    return "\n".join(lines)


def goals(rows, modes):
    """The goals, each `{what, cache, value, limit, holds, line}`."""
    out = []

    def add(what, mode, value, limit, holds, detail):
        verdict = "PASS" if holds else "FAIL"
        out.append(
            {
                "what": what,
                "cache": mode,
                "value": value,
                "limit": limit,
                "holds": bool(holds),
                "line": f"{verdict}  {what} [{mode}]: {detail}",
            }
        )

    for mode in modes:
        mine = sorted((r for r in rows if r["cache"] == mode), key=lambda r: r["size"])
        if not mine:
            continue
        small, large = mine[0], mine[-1]
        if mode in ("disk", "none"):
            growth = large["peak_rss_mib"] / small["peak_rss_mib"]
            add(
                f"peak RSS at {large['size']:,} images <= {RSS_GROWTH}x at "
                f"{small['size']:,}",
                mode,
                growth,
                RSS_GROWTH,
                growth <= RSS_GROWTH,
                f"{growth:.3f}x ({large['peak_rss_mib']:,.0f} vs "
                f"{small['peak_rss_mib']:,.0f} MiB)",
            )
        first = large["first_batch_s"]
        add(
            f"time to first batch at {large['size']:,} images <= {FIRST_BATCH_S:g} s",
            mode,
            first,
            FIRST_BATCH_S,
            first <= FIRST_BATCH_S,
            f"{first:.1f} s",
        )
        worst = min(
            mine, key=lambda r: r["pipeline_images_per_s"] / r["stage2_images_per_s"]
        )
        ratio = worst["pipeline_images_per_s"] / worst["stage2_images_per_s"]
        add(
            f"pipeline images/s >= {PIPELINE_OVER_TRAINING:g}x stage-2 training "
            "images/s",
            mode,
            ratio,
            PIPELINE_OVER_TRAINING,
            ratio >= PIPELINE_OVER_TRAINING,
            f"{ratio:.1f}x at worst ({worst['size']:,} images: "
            f"{worst['pipeline_images_per_s']:.0f} vs "
            f"{worst['stage2_images_per_s']:.1f} img/s)",
        )
    return out


def plot(rows, modes, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode in modes:
        mine = sorted((r for r in rows if r["cache"] == mode), key=lambda r: r["size"])
        if not mine:
            continue
        sizes = [r["size"] for r in mine]
        left.plot(sizes, [r["peak_rss_mib"] for r in mine], "o-", label=mode)
        right.plot(sizes, [r["pipeline_images_per_s"] for r in mine], "o-", label=mode)
    left.set_ylabel("peak RSS (MiB)")
    left.set_ylim(bottom=0)
    right.set_ylabel("pipeline images/s (batch 32, augmented)")
    right.set_ylim(bottom=0)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("images in the dataset")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(title="cache", loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["disk", "none"])
    parser.add_argument("--cache-dir", default=None, help="where the JPEGs are made")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out"))
    parser.add_argument("--quick", action="store_true", help="tiny, to check it runs")
    parser.add_argument("--steps", type=int, default=None, help="fit steps a stage")
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet", help="a tag, or none")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--write-class", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    weights = None if args.weights.lower() in ("none", "null") else args.weights
    if args.write_class is not None:
        jobs = json.loads(args.write_class)
        print(sum(_write_class(job) for job in jobs), flush=True)
        return None
    if args.child is not None:
        print(json.dumps(run_one(json.loads(args.child))), flush=True)
        return None

    sizes = args.sizes or ([60, 120] if args.quick else [1000, 10000, 100000])
    steps = args.steps or (2 if args.quick else 20)
    image_size = 64 if args.quick else 128
    pipeline_batches = 2 if args.quick else 20
    cache_dir = pathlib.Path(args.cache_dir or default_cache_dir()).expanduser()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": kerazoo_machine(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/bench_data_scale.py", *argv]),
        "settings": {
            "classes": CLASSES,
            "jpeg_side": SIDE,
            "image_size": image_size,
            "batch": BATCH,
            "steps": steps,
            "pipeline_batches": pipeline_batches,
            "model": args.model,
            "weights": weights,
            "recipe": str(RECIPE.relative_to(ROOT)),
            "jit_compile": False,
        },
        "data": {},
        "rows": [],
    }
    m = report["machine"]
    print(
        f"{m['cpu']}, {m['cpus']} cores; TensorFlow {m['tensorflow']}, Keras "
        f"{m['keras']}; sizes {', '.join(f'{s:,}' for s in sizes)}; cache "
        f"{', '.join(args.modes)}; {args.model} ({weights or 'random'} weights) at "
        f"{image_size} px, batch {BATCH}, {steps} steps",
        flush=True,
    )
    json_path = out / "data_scale.json"
    for size in sizes:
        folder, made = dataset_folder(cache_dir, size)
        report["data"][str(size)] = {
            "folder": str(folder),
            "jpeg_kb_mean": made["bytes"] / size / 1e3,
        }
        for mode in args.modes:
            disk_dir = None
            if mode == "disk":
                disk_dir = tempfile.mkdtemp(prefix=f"decoded-{size}-", dir=cache_dir)
            spec = {
                "size": size,
                "mode": mode,
                "folder": str(folder),
                "model": args.model,
                "weights": weights,
                "image_size": image_size,
                "steps": steps,
                "pipeline_batches": pipeline_batches,
                "disk_dir": disk_dir,
            }
            began = time.perf_counter()
            try:
                row = run_child(spec)
            finally:
                if disk_dir is not None:
                    shutil.rmtree(disk_dir, ignore_errors=True)
            row["wall_s"] = time.perf_counter() - began
            report["rows"].append(row)
            print(
                f"  {size:>7,} images, cache {mode:<6} first batch "
                f"{row['first_batch_s']:5.1f} s, pipeline "
                f"{row['pipeline_images_per_s']:6.0f} img/s, stage 1 "
                f"{row['stage1_images_per_s']:5.1f} img/s, stage 2 "
                f"{row['stage2_images_per_s']:5.1f} img/s, peak RSS "
                f"{row['peak_rss_mib']:,.0f} MiB ({row['wall_s']:.0f} s)",
                flush=True,
            )
            json_path.write_text(json.dumps(report, indent=2))

    report["goals"] = goals(report["rows"], args.modes)
    json_path.write_text(json.dumps(report, indent=2))
    png = out / "data_scale.png"
    plot(
        report["rows"],
        args.modes,
        png,
        f"kerazoo data layer: {m['cpu']}, {m['cpus']} cores, {report['date'][:10]}",
    )
    print()
    print(table(report["rows"]))
    print()
    for goal in report["goals"]:
        print(goal["line"])
    print(f"\nwrote {json_path} and {png}")
    return report


if __name__ == "__main__":
    main()
