"""The lecture's claims as experiments: one command each, with the plot that
shows it and a verdict computed from this run's numbers.

    kerazoo experiment optimizers --quick
    kerazoo experiment degradation --set output_dir=runs/deg --set epochs=20

Each experiment's settings are a YAML recipe that ships with the package,
`kerazoo/experiments/configs/NAME.yaml` (`settings:`, and a `quick:` section that
shrinks them to a few minutes on a 2-core CPU); `kerazoo experiment NAME --show`
prints it, to copy and edit, and `kerazoo experiment COPY.yaml` runs the copy.
A run writes its figures (PNG), its numbers (`results.json`, and CSV tables)
and prints one verdict per claim: held or not, and by how much.
"""

import importlib

from kerazoo._checks import unknown_name_error
from kerazoo.experiments._common import ExperimentError
from kerazoo.experiments._common import Verdict
from kerazoo.experiments._common import merge_settings
from kerazoo.experiments._common import recipe_path

EXPERIMENTS = {
    "optimizers": "SGD per-example/mini-batch/full-batch, momentum, Nesterov, "
    "RMSProp, Adam, AdaGrad: loss curves and 2-D trajectories",
    "initialization": "activation std through depth for Normal/Uniform/Xavier/He "
    "with sigmoid, tanh, ReLU, and the training that follows",
    "normalization": "with and without batch norm; batch vs group/layer/instance "
    "norm at batch sizes 1, 2, 32",
    "inception": "naive vs 1x1-reduced Inception modules and GoogLeNets: "
    "parameters, FLOPs, time per step, accuracy",
    "degradation": "plain vs residual networks at 20 and 56 layers (He et al., "
    "Figure 1), dense connections alongside",
    "transfer": "does a pretrained body give a head start? near (digits 0-4 to "
    "5-9) and far (ImageNet to digits) transfer, 10 and all labels per class",
}

__all__ = [
    "EXPERIMENTS",
    "ExperimentError",
    "Verdict",
    "load_experiment",
    "recipe_text",
    "run_experiment",
]


def load_experiment(name_or_path, quick=False, overrides=None):
    """Reads an experiment's recipe: returns `(name, output_dir, settings)`
    with the `quick:` section applied when `quick` and then `overrides`
    (a dict; `output_dir` is one of them)."""
    import yaml

    path = _recipe_file(name_or_path)
    recipe = yaml.safe_load(path.read_text()) or {}
    if not isinstance(recipe, dict):
        raise ExperimentError(
            f"{path}: a recipe is a mapping, got {type(recipe).__name__}"
        )
    for key in recipe:
        if key not in ("experiment", "output_dir", "settings", "quick"):
            raise ExperimentError(
                f"{path}: unknown key {key!r}; a recipe has experiment, output_dir, "
                "settings, quick"
            )
    name = _known(recipe.get("experiment"))
    defaults = recipe.get("settings") or {}
    settings = merge_settings(
        defaults, recipe.get("quick") if quick else None, f"{path}: quick"
    )
    overrides = dict(overrides or {})
    output_dir = overrides.pop("output_dir", None)
    if output_dir is None:
        output_dir = recipe.get("output_dir") or f"runs/experiments/{name}"
        output_dir += "-quick" if quick else ""
    settings = merge_settings(settings, overrides, "--set")
    return name, str(output_dir), settings


def recipe_text(name_or_path):
    """The YAML text of an experiment's recipe (by name: the package's)."""
    return _recipe_file(name_or_path).read_text()


def _recipe_file(name_or_path):
    return recipe_path(
        name_or_path
        if str(name_or_path).endswith((".yaml", ".yml"))
        else _known(name_or_path)
    )


def _known(name):
    if name not in EXPERIMENTS:
        error = unknown_name_error(
            "experiment", name, EXPERIMENTS, f"Experiments: {', '.join(EXPERIMENTS)}"
        )
        raise ExperimentError(str(error))
    return name


def run_experiment(name_or_path, quick=False, overrides=None, verbose=1):
    """Runs one experiment and returns its results (also in
    `OUTPUT_DIR/results.json`): `numbers`, `verdicts`, `figures`, `settings`."""
    from kerazoo.experiments._common import Run

    name, output_dir, settings = load_experiment(name_or_path, quick, overrides)
    module = importlib.import_module(f"kerazoo.experiments.{name}")
    run = Run(name, output_dir, settings, quick, verbose=verbose)
    run.log(f"Experiment {name}{' (quick)' if quick else ''}: {EXPERIMENTS[name]}")
    run.log(f"Output: {output_dir}")
    module.run(run, settings)
    return run.finish()
