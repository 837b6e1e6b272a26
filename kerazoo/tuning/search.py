"""Which initializer and optimizer suit this model and data? A keras-tuner search.

The recipe's `search` section bounds the space: the new head's initializer, the
optimizer family with its conditional hyperparameters (learning rate
log-uniform; momentum for momentum/nesterov; rho for rmsprop; beta_1 and beta_2
for adam/adamw), and optionally the batch size. Each trial trains the head on
the frozen body's cached features, as stage 1 of `kerazoo finetune` does, so a
trial takes seconds. The search directory (`output_dir/search`) holds the
oracle's state: rerunning the same command after a crash finishes the remaining
trials without redoing completed ones. kerazoo has keras-tuner write that state
by rename (`atomic_state_files`), so a kill at any moment leaves it whole.
"""

import contextlib
import csv
import json
import os
import pathlib
import time

import keras

from kerazoo._compat import keras_tuner_save_json
from kerazoo._compat import retry_queue
from kerazoo._compat import set_retry_queue
from kerazoo._files import replace_text
from kerazoo._session import clear_session
from kerazoo.recipes import monitor_mode

SEARCH_DIR = "search"
# Validation batch of a head trial, as fine-tuning's stage 1 evaluates.
EVALUATION_BATCH = 256


def full_runs(recipe):
    """Whether each trial is a whole fine-tuning run (stage-2 choices, or no
    stage 1: the whole network trains from the start) rather than a new head
    on cached body features."""
    return recipe.search.stage2_choices or recipe.stage1.epochs == 0


class SearchHyperModel:
    """Builds a keras-tuner HyperModel from a recipe's `search` section."""

    def __init__(self, recipe, feature_dim, num_classes):
        import keras_tuner

        self.recipe = recipe
        self.space = recipe.search
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        outer = self

        class _HyperModel(keras_tuner.HyperModel):
            def build(self, hp):
                return outer.build(hp)

            def fit(self, hp, model, *args, **kwargs):
                return outer.fit(hp, model, *args, **kwargs)

        self.hypermodel = _HyperModel(name=f"{recipe.name}_search")
        self.fit_seconds = []  # wall time of each trial's training, this process

    def optimizer_config(self, hp):
        """The trial's optimizer as a config dict (`kerazoo.optimizers.get`)."""
        space = self.space
        name = hp.Choice("optimizer", space.optimizers)
        config = {
            "name": name,
            "learning_rate": hp.Float(
                f"learning_rate_{name}",
                space.learning_rate.min,
                space.learning_rate.max,
                sampling="log",
                parent_name="optimizer",
                parent_values=[name],
            ),
        }
        if name in ("momentum", "nesterov"):
            # One hyperparameter for both families, with one condition: a
            # second "momentum" under another condition is a second entry in
            # keras-tuner's space, which a reloaded trial does not hold a
            # value for (a retried trial failed with KeyError 'momentum').
            config["momentum"] = hp.Float(
                "momentum",
                0.8,
                0.99,
                parent_name="optimizer",
                parent_values=[
                    v for v in space.optimizers if v in ("momentum", "nesterov")
                ],
            )
        if name == "rmsprop":
            config["rho"] = hp.Float(
                "rho", 0.8, 0.99, parent_name="optimizer", parent_values=[name]
            )
        if name in ("adam", "adamw"):
            config["beta_1"] = hp.Float(
                f"beta_1_{name}",
                0.8,
                0.95,
                parent_name="optimizer",
                parent_values=[name],
            )
            config["beta_2"] = hp.Choice(
                f"beta_2_{name}",
                [0.99, 0.999],
                parent_name="optimizer",
                parent_values=[name],
            )
        return config

    def choices(self, hp):
        """Declares the search space on `hp` and returns the trial's choices:
        initializer, optimizer config, and (when searched) batch size, stage-2
        unfreeze depth and body learning-rate multiplier."""
        space = self.space
        out = {
            "initializer": hp.Choice("initializer", space.initializers),
            "optimizer": self.optimizer_config(hp),
        }
        if space.batch_sizes:
            out["batch_size"] = hp.Choice("batch_size", space.batch_sizes)
        if space.unfreeze:
            # keras-tuner's Choice takes one type: depths are kept as text.
            depth = hp.Choice("unfreeze", [str(v) for v in space.unfreeze])
            out["unfreeze"] = depth if depth == "all" else int(depth)
        if space.body_lr_multiplier:
            out["body_lr_multiplier"] = hp.Float(
                "body_lr_multiplier",
                space.body_lr_multiplier.min,
                space.body_lr_multiplier.max,
                sampling="log",
            )
        return out

    def build(self, hp):
        from kerazoo import initializers
        from kerazoo import optimizers

        choices = self.choices(hp)
        if full_runs(self.recipe):
            return None  # each trial is a fine-tuning run (`run_trial`)
        inputs = keras.Input((self.feature_dim,), name="features")
        x = keras.layers.Dropout(self.recipe.head.dropout, seed=self.recipe.seed)(
            inputs
        )
        outputs = keras.layers.Dense(
            self.num_classes,
            activation="softmax",
            kernel_initializer=initializers.get(choices["initializer"]),
            name="predictions",
        )(x)
        model = keras.Model(inputs, outputs, name="head")
        model.compile(
            optimizer=optimizers.get(choices["optimizer"]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, train, validation=None, **kwargs):
        """Trains the trial's head on `train`'s features (`FeatureFile`s, read
        by batch from disk, shuffled as stage 1 shuffles them)."""
        if self.space.batch_sizes:
            batch_size = hp.Choice("batch_size", self.space.batch_sizes)
        else:
            batch_size = self.recipe.stage1.batch_size or 32
        kwargs.pop("batch_size", None)
        # tf.data (TensorFlow) only once a trial trains, not to import this.
        from kerazoo.data.pipeline import feature_pipeline

        batches = feature_pipeline(
            train, train.labels, batch_size, training=True, seed=self.recipe.seed
        )
        if validation is not None:
            validation = feature_pipeline(
                validation, validation.labels, EVALUATION_BATCH
            )
        start = time.perf_counter()
        history = model.fit(batches, validation_data=validation, **kwargs)
        self.fit_seconds.append(time.perf_counter() - start)
        return history

    def run(self, hp, directory, execution=0, log=print):
        """A full trial: the recipe with this trial's choices, run by the
        fine-tuning engine in `directory` (which it resumes after a crash).
        Returns the best value of the objective over the last stage."""
        import gc

        from kerazoo.finetune import run
        from kerazoo.finetune.report import read_stage_history

        clear_session()
        gc.collect()
        recipe = trial_recipe(self.recipe, self.choices(hp), directory, execution)
        start = time.perf_counter()
        run(recipe, log=lambda line: log(f"    {line}"))
        self.fit_seconds.append(time.perf_counter() - start)
        stage = 2 if recipe.stage2.epochs else 1
        rows = read_stage_history(directory / f"history_stage{stage}.csv", stage)
        objective = self.space.objective
        values = [r[objective] for r in rows if objective in r]
        best = min(values) if monitor_mode(objective) == "min" else max(values)
        log(
            f"  {directory.parent.name}: {objective} {best:.4f} "
            f"({time.perf_counter() - start:.0f} s; {_describe(self.choices(hp))})"
        )
        clear_session()
        gc.collect()
        return best


def _describe(choices):
    optimizer = dict(choices["optimizer"])
    text = f"{choices['initializer']}, {optimizer.pop('name')}"
    text += f" lr {optimizer.pop('learning_rate'):.3g}"
    text += "".join(f", {k} {v:.3g}" for k, v in optimizer.items())
    for key in ("batch_size", "unfreeze", "body_lr_multiplier"):
        if key in choices:
            value = choices[key]
            text += f", {key} " + (
                f"{value:.3g}" if isinstance(value, float) else f"{value}"
            )
    return text


def trial_recipe(recipe, choices, output_dir, execution=0):
    """`recipe` with a trial's `choices` in place, writing to `output_dir`.

    The initializer is the new head's, and, when the trials are whole runs of a
    model without pretrained weights, every layer's (`model.initializer`). The
    optimizer is stage 1's, stage 2 using the same family at the recipe's
    stage-2 / stage-1 learning-rate ratio; without stage 1 it is stage 2's."""
    from kerazoo.recipes import Recipe

    data = recipe.to_dict()
    data.pop("search", None)
    data["output_dir"] = str(output_dir)
    data["seed"] = recipe.seed + execution
    optimizer = dict(choices["optimizer"])
    s1, s2 = data["stage1"], data["stage2"]
    data["head"]["initializer"] = choices["initializer"]
    if full_runs(recipe) and recipe.model.weights is None:
        data["model"]["initializer"] = choices["initializer"]
    if recipe.stage1.epochs:
        s1["optimizer"] = optimizer
        ratio = (
            recipe.stage2.optimizer.learning_rate
            / recipe.stage1.optimizer.learning_rate
        )
        s2["optimizer"] = {
            **optimizer,
            "learning_rate": optimizer["learning_rate"] * ratio,
        }
    else:
        s2["optimizer"] = optimizer
    if "batch_size" in choices:
        s1["batch_size"] = s2["batch_size"] = choices["batch_size"]
    if "unfreeze" in choices:
        s2["unfreeze"] = choices["unfreeze"]
    if "body_lr_multiplier" in choices:
        s2["body_lr_multiplier"] = choices["body_lr_multiplier"]
    return Recipe.model_validate(data)


def _tuner(recipe, hypermodel, directory, runner=None):
    """The recipe's keras-tuner tuner; with `runner(hp, directory, execution)`,
    each trial calls it instead of building and fitting a model."""
    import keras_tuner

    space = recipe.search
    if runner is not None:
        # (The recipe refuses hyperband here: it would set the trials' epochs.)
        base = (
            keras_tuner.RandomSearch
            if space.oracle == "random"
            else keras_tuner.BayesianOptimization
        )

        class RunTuner(base):
            def run_trial(self, trial, *args, **kwargs):
                # Several executions: other seeds, the objective averaged.
                folder = pathlib.Path(self.get_trial_dir(trial.trial_id))
                n = space.executions_per_trial
                scores = [
                    runner(trial.hyperparameters, folder / f"run{i}", i)
                    for i in range(n)
                ]
                return {space.objective: sum(scores) / n}

        return RunTuner(
            hypermodel, max_trials=space.max_trials, **_common(recipe, directory)
        )
    common = _common(recipe, directory)
    if space.oracle == "random":
        return keras_tuner.RandomSearch(
            hypermodel, max_trials=space.max_trials, **common
        )
    if space.oracle == "bayesian":
        return keras_tuner.BayesianOptimization(
            hypermodel, max_trials=space.max_trials, **common
        )
    return keras_tuner.Hyperband(
        hypermodel, max_epochs=space.epochs, max_consecutive_failed_trials=3, **common
    )


def _common(recipe, directory):
    import keras_tuner

    space = recipe.search
    return dict(
        objective=keras_tuner.Objective(space.objective, monitor_mode(space.objective)),
        executions_per_trial=space.executions_per_trial,
        seed=recipe.seed,
        directory=str(directory.parent),
        project_name=directory.name,
        overwrite=False,
    )


def _features(recipe, data, directory, log):
    """The body's features of the training and validation splits, through
    the same disk files as fine-tuning's stage 1 (`extract_features`): a
    search started again, or a fine-tuning run given the same `data.cache_dir`,
    reuses them."""
    from kerazoo.data.pipeline import Pipelines
    from kerazoo.finetune.engine import build
    from kerazoo.finetune.engine import extract_features

    parts = build(recipe, data.num_classes)
    pipelines = Pipelines(data, recipe.model.image_size, cache="none", log=log)
    # The open files, not their rows: each trial's head reads its batches
    # from disk (`feature_pipeline`), so the search's memory does not grow
    # with the dataset.
    out = {
        split: extract_features(parts, pipelines, split, directory, log=log)
        for split in ("train", "validation")
    }
    dim = out["train"].shape[1]
    del parts
    clear_session()
    return out, dim


def results_table(tuner):
    """Completed trials, best first: dicts of trial id, objective, values."""
    rows = []
    for trial in tuner.oracle.trials.values():
        if trial.status != "COMPLETED" or trial.score is None:
            continue
        values = dict(trial.hyperparameters.values)
        optimizer = values.get("optimizer")
        rows.append(
            {
                "trial": trial.trial_id,
                "objective": float(trial.score),
                "initializer": values.get("initializer"),
                "optimizer": optimizer,
                "learning_rate": values.get(f"learning_rate_{optimizer}"),
                "batch_size": values.get("batch_size"),
                "other": {
                    k: v
                    for k, v in values.items()
                    if k not in ("initializer", "optimizer", "batch_size")
                    and not k.startswith("learning_rate")
                    and not k.startswith("tuner/")
                },
            }
        )
    reverse = "loss" not in tuner.oracle.objective.name
    return sorted(rows, key=lambda r: r["objective"], reverse=reverse)


def _plot(rows, path, objective):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ("optimizer", "initializer"), strict=True):
        names = sorted({r[key] for r in rows})
        for i, name in enumerate(names):
            scores = [r["objective"] for r in rows if r[key] == name]
            ax.scatter([i] * len(scores), scores, alpha=0.7)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(objective)
        ax.set_title(f"{objective} by {key}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def search(recipe, log=print):
    """Runs (or resumes) the recipe's search.

    Returns:
        The ranked results (`results_table`), also written to
        `output_dir/results.csv`, `results.json` and `results.png`.
    """
    if recipe.search is None:
        raise ValueError(
            "the recipe has no `search` section (oracle, max_trials, initializers, "
            "optimizers, learning_rate, ...)"
        )
    directory = pathlib.Path(recipe.output_dir) / SEARCH_DIR
    _check_state(directory)
    _check_space(recipe, directory)
    with atomic_state_files():
        return _search(recipe, log)


def _search(recipe, log):
    from kerazoo.finetune.engine import load_recipe_data

    out = pathlib.Path(recipe.output_dir)
    directory = out / SEARCH_DIR
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(recipe.seed)
    if _role() == "chief":
        # The chief only serves the oracle: no data, no model.
        model = SearchHyperModel(recipe, 1, 1)
        tuner = _tuner(recipe, model.hypermodel, directory)
        _retry_interrupted(tuner.oracle, log)
        log(
            f"distributed search: serving the oracle on "
            f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
            " (no authentication: keep it on a private network)"
        )
        tuner.search(epochs=recipe.search.epochs)
        return _results(tuner, model, recipe, out, log)
    full = full_runs(recipe)
    if full:
        data, features = None, None
        model = SearchHyperModel(recipe, None, None)
        tuner = _tuner(
            recipe,
            model.hypermodel,
            directory,
            runner=lambda hp, folder, execution: model.run(
                hp, folder, execution, log=log
            ),
        )
    else:
        data = load_recipe_data(recipe)
        log(f"data: {data.summary()}")
        start = time.perf_counter()
        cache = pathlib.Path(recipe.data.cache_dir or out / "cache")
        features, dim = _features(recipe, data, cache, log)
        log(
            f"body features ({recipe.model.name}, {dim} per image) computed in "
            f"{time.perf_counter() - start:.1f} s"
        )
        model = SearchHyperModel(recipe, dim, data.num_classes)
        tuner = _tuner(recipe, model.hypermodel, directory)
    role = _role()
    done = 0
    if role == "single":  # a worker's oracle is a client of the chief's
        done = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
        _retry_interrupted(tuner.oracle, log)
    if done:
        log(f"resuming the search in {directory}: {done} trials already completed")
    space = recipe.search
    if full:
        start_from = (
            "random weights, the initializer drawing every layer"
            if recipe.model.weights is None
            else f"{recipe.model.weights} weights"
        )
        log(
            f"search: {space.oracle}, {space.max_trials} trials, each a fine-tuning "
            f"run from {start_from} (stage 1 {recipe.stage1.epochs} epochs, stage 2 "
            f"{recipe.stage2.epochs}), objective {space.objective} of its last stage"
        )
    else:
        log(
            f"search: {space.oracle}, {space.max_trials} trials, {space.epochs} "
            f"epochs each, objective {space.objective}"
        )
    if role == "worker":
        log(
            f"distributed search: worker {os.environ['KERASTUNER_TUNER_ID']}, oracle "
            f"at {os.environ['KERASTUNER_ORACLE_IP']}:"
            f"{os.environ['KERASTUNER_ORACLE_PORT']}"
        )
    start = time.perf_counter()
    if full:
        tuner.search(verbose=0)
    else:
        tuner.search(
            features["train"],
            features["validation"],
            epochs=space.epochs,
            verbose=0,
            callbacks=[keras.callbacks.TerminateOnNaN()],
        )
    timing = _timing(time.perf_counter() - start, model.fit_seconds)
    if timing["trials"]:
        log(
            f"{timing['trials']} trials in {timing['search_seconds']:.1f} s, of "
            f"which fitting {timing['fit_seconds']:.1f} s; keras-tuner's own share "
            f"(oracle, model building, checkpoints) {timing['overhead_share']:.1%}"
        )
        (out / "timing.json").write_text(json.dumps(timing, indent=2))
    if role == "worker":
        log("worker done; the chief writes the results")
        return []
    return _results(tuner, model, recipe, out, log)


def _results(tuner, model, recipe, out, log):
    """Ranks the completed trials, writes the tables, the plot and
    `best_recipe.yaml`, and prints the ranking."""
    import yaml

    objective = recipe.search.objective
    rows = results_table(tuner)
    _write(rows, out, objective)
    _print(rows, objective, log)
    if rows:
        best = tuner.oracle.trials[rows[0]["trial"]].hyperparameters
        best_recipe = trial_recipe(recipe, model.choices(best), out / "best")
        path = out / "best_recipe.yaml"
        path.write_text(
            f"# The best trial ({rows[0]['trial']}, {objective} "
            f"{rows[0]['objective']:.4f}) of the search in {out}, as a recipe:\n"
            f"#   kerazoo finetune {path}\n"
            + yaml.safe_dump(best_recipe.to_dict(), sort_keys=False)
        )
        log(f"best trial as a recipe: {path} (kerazoo finetune {path})")
    return rows


def _space(recipe):
    """What decides a search's trials: the recipe but where it is written, and
    the search section but max_trials (which may grow to extend a search)."""
    data = recipe.to_dict()
    for key in ("output_dir", "export", "tensorboard", "distribution"):
        data.pop(key, None)
    data["search"].pop("max_trials", None)
    return data


def _flat(data, prefix=""):
    if not isinstance(data, dict):
        return {prefix: data}
    out = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else key))
    return out


def _check_space(recipe, directory):
    """Refuses, before any trial, a search folder made for another space;
    records this space in a new one."""
    path = directory / "space.json"
    here = _space(recipe)
    if path.exists():
        there = json.loads(path.read_text())
        if there != here:
            a, b = _flat(there), _flat(here)
            keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            detail = "; ".join(
                f"{k}: {json.dumps(a.get(k))} there, {json.dumps(b.get(k))} here"
                for k in keys[:4]
            )
            raise ValueError(
                f"{directory} holds a search of another space ({detail}"
                f"{'; ...' if len(keys) > 4 else ''}). Its trials would not compare "
                "with these: use another output_dir, or delete the folder to start "
                "over. (search.max_trials may change: it extends the search.)"
            )
    else:
        directory.mkdir(parents=True, exist_ok=True)
        replace_text(path, json.dumps(here, indent=2))


@contextlib.contextmanager
def atomic_state_files():
    """Within this, keras-tuner writes its state files (`oracle.json`,
    `tuner0.json`, each trial's `trial.json` and `build_config.json`) by
    rename (`kerazoo._files.replace_text`).

    keras-tuner writes them in place, through `tf.io.gfile` on TensorFlow,
    which leaves the file empty until it is closed: a search killed in that
    moment cannot be resumed (`Expecting value: line 1 column 1 (char 0)`).
    Remote paths (`gs://...`) keep keras-tuner's own writer.
    """

    def save_json(original, path, obj):
        if "://" in str(path):
            return original(path, obj)
        text = json.dumps(obj)
        replace_text(path, text)
        return text

    with keras_tuner_save_json(save_json):
        yield


def _check_state(directory):
    """Refuses, naming each, state files that do not parse (written by a run
    killed mid-write before kerazoo wrote them by rename, or damaged since),
    instead of keras-tuner's bare JSON error."""
    paths = sorted(directory.glob("*.json")) + sorted(directory.glob("trial_*/*.json"))
    broken = []
    for path in paths:
        try:
            json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            broken.append(path)
    if not broken:
        return
    names = ", ".join(str(p.relative_to(directory)) for p in broken)
    raise ValueError(
        f"cannot resume the search in {directory}: {names} "
        f"{'is' if len(broken) == 1 else 'are'} not readable JSON (keras-tuner's "
        "state, cut short by a kill or damaged since). Restore "
        f"{'it' if len(broken) == 1 else 'them'}, or delete the folder (or use "
        "another output_dir) to start the search over."
    )


def _retry_interrupted(oracle, log):
    """Drops finished trials from the retry queue, and queues again the trials
    that a crash left RUNNING. keras-tuner retries the trials its saved state
    lists as ongoing, but it writes a new trial's file before its own state: a
    kill between the two leaves a trial RUNNING that it would never run, yet
    count towards max_trials."""
    # keras-tuner ends a trial by writing its file (COMPLETED) and then its own
    # state, which still lists the trial as ongoing until the next trial
    # starts: killed in between, it would run the completed trial again. The
    # trial's file is written first, so it is the one to believe.
    queue = [
        trial_id
        for trial_id in retry_queue(oracle)
        if oracle.trials[trial_id].status not in ("COMPLETED", "FAILED")
    ]
    queued = set(queue) | {t.trial_id for t in oracle.ongoing_trials.values()}
    for trial_id, trial in sorted(oracle.trials.items()):
        if trial.status == "RUNNING" and trial_id not in queued:
            queue.append(trial_id)
            log(f"trial {trial_id} was interrupted: it runs again")
    set_retry_queue(oracle, queue)


def _timing(search_seconds, fit_seconds):
    fit = sum(fit_seconds)
    return {
        "trials": len(fit_seconds),
        "search_seconds": search_seconds,
        "fit_seconds": fit,
        "overhead_seconds": search_seconds - fit,
        "overhead_share": (search_seconds - fit) / search_seconds if fit else 0.0,
    }


def _role():
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID")
    if "KERASTUNER_ORACLE_IP" not in os.environ or tuner_id is None:
        return "single"
    return "chief" if "chief" in tuner_id else "worker"


def _write(rows, out, objective):
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "rank",
                "trial",
                objective,
                "initializer",
                "optimizer",
                "learning_rate",
                "batch_size",
                "other",
            ]
        )
        for rank, r in enumerate(rows, start=1):
            writer.writerow(
                [
                    rank,
                    r["trial"],
                    r["objective"],
                    r["initializer"],
                    r["optimizer"],
                    r["learning_rate"],
                    r["batch_size"],
                    json.dumps(r["other"]),
                ]
            )
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    if rows:
        _plot(rows, out / "results.png", objective)


def _print(rows, objective, log):
    log(
        f"{'rank':>4}  {'trial':>5}  {objective:>12}  {'initializer':<14}  "
        f"{'optimizer':<9}  {'learning rate':>13}  other"
    )
    for rank, r in enumerate(rows, start=1):
        lr = r["learning_rate"]
        other = "  ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in r["other"].items()
        )
        log(
            f"{rank:>4}  {r['trial']:>5}  {r['objective']:>12.4f}  "
            f"{r['initializer']:<14}  {r['optimizer']:<9}  "
            f"{(f'{lr:.3g}' if lr is not None else '-'):>13}  {other}".rstrip()
        )
    if rows:
        best = rows[0]
        log(
            f"best: {best['optimizer']} (lr {best['learning_rate']:.3g}) with "
            f"{best['initializer']}, {objective} {best['objective']:.4f}"
        )
    log(f"{len(rows)} completed trials; ranks also in results.csv and results.png")
