"""The two-stage fine-tuning engine behind `kerazoo finetune RECIPE`.

Stage 1 trains a new head on a frozen body (called in inference mode); when the
stage has no augmentation, the body's pooled features are computed once and the
head trains on them, which gives the same head as running the body every epoch.
Stage 2 unfreezes the body as the recipe says and trains with a fresh optimizer,
batch norm frozen by default and an optional body learning-rate multiplier.

Every stage epoch is backed up (`EpochBackup`): a killed run, rerun with the
same command, resumes from its last completed epoch in the right stage.
"""

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile
import time
import typing
import warnings

import keras
import numpy as np
import tensorflow as tf
import yaml

import kerazoo.export.folding as folding
import kerazoo.finetune.ema as weight_ema
import kerazoo.finetune.freezing as freezing
import kerazoo.finetune.lr_find as lr_find
import kerazoo.finetune.report as reporting
from kerazoo import distributed
from kerazoo import initializers
from kerazoo import optimizers
from kerazoo._files import replace_text
from kerazoo.data import load_data
from kerazoo.data.cache import plan_cache
from kerazoo.data.features import FeatureFile
from kerazoo.data.pipeline import Pipelines
from kerazoo.data.pipeline import feature_pipeline
from kerazoo.export import export_source
from kerazoo.models import create_model
from kerazoo.optimizers import batch_size_for
from kerazoo.optimizers import schedules
from kerazoo.recipes import DROP_PATH_OPTION
from kerazoo.recipes import Constant
from kerazoo.recipes import RecipeError
from kerazoo.recipes import monitor_mode
from kerazoo.recipes import validate_recipe
from kerazoo.weights import tta

STATE = "state.json"
# Test-only fault injection: "STAGE,BATCH" gives that training batch NaN images.
FAULT_NAN_BATCH = "KERAZOO_FAULT_NAN_BATCH"


class FinetuneError(RuntimeError):
    """A run that stopped; the message says why and what is kept."""


class _Run:
    """The output directory of one run and its progress."""

    def __init__(self, recipe, restart=False):
        self.recipe = recipe
        self.dir = pathlib.Path(recipe.output_dir)
        state_path = self.dir / STATE
        if restart and state_path.exists():
            # The content-keyed caches stay: they are checked before reuse.
            for path in self.dir.iterdir():
                if path.name == "cache":
                    continue
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        elif not state_path.exists() and self.dir.exists() and any(self.dir.iterdir()):
            raise FinetuneError(
                f"output_dir {self.dir} is not empty and holds no kerazoo run; "
                "choose another (--set output_dir=DIR)"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = {"fingerprint": recipe.fingerprint(), "stages": {}}
        if state_path.exists():
            saved = json.loads(state_path.read_text())
            if saved.get("fingerprint") != self.state["fingerprint"]:
                raise FinetuneError(
                    f"{self.dir} holds a run of a different recipe (its recipe.yaml "
                    "shows which); rerun with --restart to replace it, or choose "
                    "another output_dir"
                )
            self.state = saved

        (self.dir / "recipe.yaml").write_text(
            yaml.safe_dump(recipe.to_dict(), sort_keys=False)
        )
        self.save()

    def save(self):
        replace_text(self.dir / STATE, json.dumps(self.state, indent=2))

    def stage(self, n):
        return self.state["stages"].setdefault(str(n), {"done": False, "seconds": 0.0})

    @property
    def finished(self):
        return self.state.get("finished", False) and (self.dir / "report.json").exists()


class _BestWeights(keras.callbacks.Callback):
    """Saves the whole model's weights (by rename) when the monitored metric
    improves, and remembers which epoch that was. Keras's `ModelCheckpoint`
    writes the file in place, so a kill mid-write loses the best weights."""

    def __init__(self, model, path, monitor="val_accuracy", history=(), ema=None):
        super().__init__()
        self.target = model
        self.path = pathlib.Path(path)
        self.monitor = monitor
        # With a `WeightEMA`, the weights saved are the averaged ones validated.
        self.ema = ema
        self.sign = -1.0 if monitor_mode(monitor) == "min" else 1.0
        # A resumed stage starts from the best of the epochs it already ran.
        self.best, self.best_epoch = -math.inf, None
        for row in history:
            if monitor in row and self.sign * row[monitor] > self.best:
                # CSVLogger counts epochs from 0.
                self.best = self.sign * row[monitor]
                self.best_epoch = row["epoch"] + 1

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if self.sign * value > self.best:
            self.best, self.best_epoch = self.sign * value, epoch + 1
            with self.ema.averaged() if self.ema else contextlib.nullcontext():
                _save_weights_by_rename(self.target, self.path)


def _save_weights_by_rename(model, path):
    """`model.save_weights(path)` through a temporary file renamed over
    `path`: a kill (or a full disk) mid-write leaves the file as it was."""
    path = pathlib.Path(path)
    tmp = path.with_name(f"{path.name[: -len('.weights.h5')]}.partial.weights.h5")
    try:
        model.save_weights(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class EpochBackup(keras.callbacks.Callback):
    """Backs up the fitted model (weights, optimizer state) at every epoch's
    end, so that a killed `fit` resumes from its last completed epoch.

    What `keras.callbacks.BackupAndRestore` does, but whole at any moment:
    Keras's callback overwrites `latest.weights.h5` and then
    `training_metadata.json` in place, so a kill during either write leaves
    a file that cannot be read (the rerun fails), and a kill between them
    pairs one epoch's weights with the previous epoch's number. Here each
    epoch's weights go to their own file, written by rename, and only then
    does the metadata (also renamed into place) name that file and its epoch;
    older weight files are removed after. The folder is removed when `fit`
    ends normally and kept when it raises.

    Resuming: `EpochBackup.completed_epochs(directory)` is the epoch to pass
    to `fit(initial_epoch=...)`; the callback loads the weights when training
    begins (after Keras has built the optimizer and metrics).
    """

    METADATA = "training_metadata.json"

    def __init__(self, directory):
        super().__init__()
        self.directory = pathlib.Path(directory)

    @classmethod
    def _metadata(cls, directory):
        path = pathlib.Path(directory) / cls.METADATA
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
            epoch = int(data["epoch"])
        except (ValueError, KeyError, TypeError) as error:
            raise FinetuneError(
                f"the backup {path} is not readable ({error}); delete "
                f"{path.parent} to redo this stage from its start"
            ) from None
        # Keras's BackupAndRestore (earlier kerazoo) kept latest.weights.h5.
        return epoch, path.parent / data.get("weights", "latest.weights.h5")

    @classmethod
    def completed_epochs(cls, directory):
        """Epochs the backup in `directory` holds (0 when there is none)."""
        found = cls._metadata(directory)
        return found[0] if found else 0

    def on_train_begin(self, logs=None):
        found = self._metadata(self.directory)
        if found is None:
            return
        epoch, weights = found
        if not weights.exists():
            raise FinetuneError(
                f"the backup in {self.directory} names {weights.name} (epoch "
                f"{epoch}), which is missing; delete {self.directory} to redo "
                "this stage from its start"
            )
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(weights)

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch{epoch + 1}.weights.h5"
        _save_weights_by_rename(self.model, self.directory / name)
        replace_text(
            self.directory / self.METADATA,
            json.dumps({"epoch": epoch + 1, "weights": name}),
        )
        for old in self.directory.glob("*.weights.h5"):
            if old.name != name:
                old.unlink()

    def on_train_end(self, logs=None):
        shutil.rmtree(self.directory, ignore_errors=True)


class _PaddedLoss(keras.callbacks.Callback):
    """Makes `val_loss` the mean over the real validation rows under
    data_parallel (`distributed.Padding`); first of a stage's callbacks, so
    that the history and the best-epoch choice see the corrected value."""

    def __init__(self, padding):
        super().__init__()
        self.padding = padding

    def on_epoch_begin(self, epoch, logs=None):
        self.padding.reset()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and "val_loss" in logs:
            logs["val_loss"] = float(logs["val_loss"]) * self.padding.loss_scale()


class _StageSummary(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0
        self.logs = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epochs = epoch + 1
        self.logs = dict(logs or {})


def _strategy(distribution):

    if distribution == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def build(recipe, num_classes):
    """The fine-tuning model and its parts.

    Returns:
        A dict: `model` (images -> probabilities, the body called normally),
        `frozen` (the same layers, the body called in inference mode),
        `features` (images -> pooled body features, inference mode), `head`
        (features -> probabilities), `body`, and `spec` (the recipe's model section).
    """

    spec = recipe.model
    height, width = spec.image_size
    options = dict(spec.options)
    if spec.drop_path is not None:
        options[DROP_PATH_OPTION] = spec.drop_path
    base = create_model(
        spec.name,
        input_shape=(height, width, 3),
        weights=spec.weights,
        include_top=False,
        pooling="avg",
        **options,
    )
    pre = base.get_layer("preprocessing")
    body = base.get_layer("body")
    if spec.initializer is not None:  # from scratch, with the chosen start
        initializers.reinitialize(body, spec.initializer)
    pool = base.get_layer("pool")
    dropout = keras.layers.Dropout(
        recipe.head.dropout, seed=recipe.seed, name="dropout"
    )
    dense = keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_initializer=initializers.get(recipe.head.initializer),
        dtype="float32",  # probabilities in float32 under mixed precision too
        name="predictions",
    )
    images = keras.Input((height, width, 3), name="image")
    model = keras.Model(
        images, dense(dropout(pool(body(pre(images))))), name=f"{spec.name}_finetuned"
    )
    pooled = pool(body(pre(images), training=False))
    frozen = keras.Model(images, dense(dropout(pooled)), name="stage1")
    features = keras.Model(images, pooled, name="features")
    feature_input = keras.Input(pooled.shape[1:], name="features")
    head = keras.Model(feature_input, dense(dropout(feature_input)), name="head")
    return {
        "model": model,
        "frozen": frozen,
        "features": features,
        "head": head,
        "body": body,
        "spec": spec.model_dump(mode="json"),
    }


def _optimizer(stage, steps_per_epoch, multipliers=None):

    config = stage.optimizer.as_dict()
    lr = config.pop("learning_rate")
    total = max(1, steps_per_epoch * stage.epochs)
    schedule = stage.schedule
    if schedule.name == "warmup_cosine":
        lr = schedules.WarmupCosine(
            lr,
            total,
            warmup_steps=round(schedule.warmup_epochs * steps_per_epoch),
            final_learning_rate=schedule.final_learning_rate,
        )
    elif schedule.name == "one_cycle":
        lr = schedules.OneCycle(
            lr,
            total,
            pct_start=schedule.pct_start,
            div_factor=schedule.div_factor,
            final_div_factor=schedule.final_div_factor,
        )
    elif schedule.name == "step_decay":
        lr = schedules.StepDecay(
            lr, schedule.every_epochs * steps_per_epoch, gamma=schedule.gamma
        )
    if multipliers:
        config["lr_multipliers"] = multipliers
    config.update(weight_ema.optimizer_options(stage.ema))
    return optimizers.get({**config, "learning_rate": lr})


def _callbacks(run, stage_number, stage, target, summary):
    """The stage's callbacks, and the one that keeps its best weights."""
    recipe = run.recipe
    backup = run.dir / "backup" / f"stage{stage_number}"
    history = run.dir / f"history_stage{stage_number}.csv"
    (run.dir / "checkpoints").mkdir(exist_ok=True)
    ema = None if stage.ema is None else weight_ema.WeightEMA(stage.ema.start_epoch)
    best = _BestWeights(
        target,
        run.dir / "checkpoints" / f"best_stage{stage_number}.weights.h5",
        history=reporting.read_stage_history(history, stage_number),
        ema=ema,
    )
    callbacks = [
        keras.callbacks.TerminateOnNaN(raise_error=True),
        # Before the backup: it resets the average of an epoch before start_epoch.
        *([ema] if ema else []),
        keras.callbacks.CSVLogger(str(history), append=True),
        best,
        # After the history row and the best weights: a kill between them
        # reruns the epoch (its row is written twice, the last copy kept)
        # instead of losing its row.
        EpochBackup(backup),
        summary,
    ]
    if stage.early_stopping:
        monitor = stage.early_stopping.monitor
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                patience=stage.early_stopping.patience,
                mode=monitor_mode(monitor),
            )
        )
    if recipe.tensorboard:
        callbacks.append(
            keras.callbacks.TensorBoard(str(run.dir / "logs" / f"stage{stage_number}"))
        )
    return callbacks, best


def _batch_size(stage, n):

    return batch_size_for(stage.batching, n, stage.batch_size)


def _verbose():
    return 1 if sys.stdout.isatty() else 2


def _fit(
    run,
    n,
    model,
    train,
    validation,
    stage,
    callbacks,
    log,
    class_weight=None,
    steps_per_epoch=None,
):
    record = run.stage(n)
    backup = run.dir / "backup" / f"stage{n}"
    epoch = EpochBackup.completed_epochs(backup)
    if epoch:
        log(
            f"stage {n}: resuming after epoch {epoch} of {stage.epochs} from the "
            f"backup in {backup}"
        )
    start = time.perf_counter()
    try:
        model.fit(
            train,
            validation_data=validation,
            epochs=stage.epochs,
            initial_epoch=epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=_verbose(),
            shuffle=False,  # the pipeline shuffles, seeded
            class_weight=class_weight,
        )
    except RuntimeError as error:
        if "NaN or Inf loss" not in str(error):
            raise
        record["seconds"] += time.perf_counter() - start
        run.save()
        done = len(reporting.read_stage_history(run.dir / f"history_stage{n}.csv", n))
        raise FinetuneError(
            f"stage {n} stopped: the loss became NaN or infinite in epoch "
            f"{done + 1} ({error}). The backup of the last completed epoch is kept "
            f"in {run.dir / 'backup' / f'stage{n}'}; fix the recipe (a lower "
            "learning rate, gradient clipping) and rerun to resume, or --restart"
        ) from None
    record["seconds"] += time.perf_counter() - start


def load_recipe_data(recipe):
    """The `ImageData` a recipe's `data` section names."""

    return load_data(
        recipe.data.uri,
        seed=recipe.seed,
        data_dir=recipe.data.data_dir,
        download=recipe.data.download,
    )


def _augment(recipe, stage):
    """The recipe's augmentation when this stage uses it, else None."""
    augment = recipe.data.augment
    return augment if stage.augment and augment.enabled else None


def _mixes(recipe, stage):
    """`{"mixup": ..., "cutmix": ...}` of the recipe when this stage augments
    (mixing is image augmentation: a stage on cached features has none)."""
    if not stage.augment:
        return {"mixup": None, "cutmix": None}
    return {"mixup": recipe.data.mixup, "cutmix": recipe.data.cutmix}


def _loss(stage, mixes):
    """The stage's loss, and what the report says of it: categorical
    crossentropy on one-hot labels when the stage smooths or mixes its labels,
    else sparse categorical crossentropy on class indices."""
    mixed = [name for name, mix in mixes.items() if mix is not None]
    if not (stage.label_smoothing or mixed):
        return "sparse_categorical_crossentropy", "sparse_categorical_crossentropy"
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=stage.label_smoothing)
    said = (
        [f"label smoothing {stage.label_smoothing:g}"] if stage.label_smoothing else []
    )
    return loss, f"categorical_crossentropy ({', '.join(said + mixed)})"


def class_weights(spec, data):
    """`fit`'s `class_weight` (`{index: weight}`, every class) for a recipe's
    `data.class_weight`, or None.

    `balanced` gives class c the weight n / (classes x n_c), from the training
    split's labels (known before decoding); in a mapping, a key is a class
    name, or an index when no class has that name, and a class left out
    weighs 1.

    Raises:
        RecipeError: A class that the data does not have (named), or
            `balanced` on a split whose labels are unknown before reading.
    """
    if spec is None:
        return None
    names = [str(name) for name in data.class_names]
    k = len(names)
    if spec == "balanced":
        labels = data.splits["train"].labels
        if labels is None:
            raise RecipeError(
                "data.class_weight: balanced needs the training split's labels, "
                f"which {data.uri} does not know before reading its images; give "
                "{class: weight} instead"
            )
        counts = np.bincount(np.asarray(labels), minlength=k)
        n = counts.sum()
        # A class with no training image never weighs a loss: 1, not infinity.
        return {i: float(n / (k * c)) if c else 1.0 for i, c in enumerate(counts)}
    weights = {}
    for key, weight in spec.items():
        if str(key) in names:
            index = names.index(str(key))
        elif isinstance(key, int) or key.isdigit():
            index = int(key)
        else:
            index = None
        if index is None or index >= k:
            shown = ", ".join(names[:10]) + (", ..." if k > 10 else "")
            raise RecipeError(
                f"data.class_weight.{key}: no class {key!r} in {data.uri}; a key "
                f"is a class name ({shown}) or an index in [0, {k})"
            )
        if index in weights:
            raise RecipeError(
                f"data.class_weight.{key}: class {names[index]!r} (index {index}) "
                "is given twice"
            )
        weights[index] = float(weight)
    return {i: weights.get(i, 1.0) for i in range(k)}


def _folded_features(parts):
    """The features model with its batch norms folded, or the model itself
    when folding fails (a custom layer that cannot be copied): folding only
    saves time, and the reason is kept in `parts["_folding"]`."""

    model = parts["features"]
    try:
        folded, report = folding.fold_batch_norms(model)
    except Exception as error:  # a copy that fails costs only time
        parts["_folding"] = f"not folded ({type(error).__name__}: {error})"
        return model
    if not report.folded:
        parts["_folding"] = "no batch norm to fold"
        return model
    parts["_folding"] = f"{len(report.folded)} batch norms folded"
    return folded


def _extractor(parts, fold=True):
    """`images -> features` (numpy) for `body_features`, made once per `parts`."""

    extract = parts.get("_extract")
    if extract is not None:
        return extract
    if fold:
        model = _folded_features(parts)
    else:
        model, parts["_folding"] = parts["features"], "not folded (fold=False)"
    if keras.backend.backend() == "tensorflow":
        spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), model.inputs[0].dtype)
        function = tf.function(
            lambda x: model(x, training=False), input_signature=[spec]
        )

        def extract(x):
            return function(x).numpy()
    else:
        size = []

        def extract(x):
            x = np.asarray(x)
            size[:] = size or [len(x)]
            n = len(x)
            if n < size[0]:
                pad = np.zeros((size[0] - n, *x.shape[1:]), x.dtype)
                x = np.concatenate([x, pad])
            return keras.ops.convert_to_numpy(model.predict_on_batch(x))[:n]

    parts["_extract"] = extract
    return extract


def body_features(parts, pipeline, fold=True):
    """Pooled body features and labels of a `(images, labels)` pipeline, in one
    pass over it, compiled once for every batch size: on TensorFlow one
    `tf.function` with an unknown batch dimension; on other backends each batch
    padded to the first one's size (the body runs in inference mode, so the
    padding changes no other image's features). With `predict` each split's
    last, smaller batch cost a new trace of the whole body.

    The pass runs a copy of the body with its batch norms folded into the
    convolutions before them (`kerazoo.export.fold_batch_norms`): the body is
    frozen and in inference mode, so each batch norm is a fixed affine map and
    the copy computes the same features (to float32 rounding) with less work.
    `parts["_folding"]` tells how many were folded, or why none were;
    `fold=False` runs the body as it is (the first call decides for `parts`)."""
    extract = _extractor(parts, fold)
    outputs, labels = [], []
    for x, y in pipeline:
        outputs.append(extract(x))
        labels.append(y.numpy())
    return np.concatenate(outputs), np.concatenate(labels)


def features_key(parts, split_key):
    """Content key of a split's stage-1 features: the model spec it was built
    from, its preprocessing, every weight of the features model (shapes and
    values, not names, which depend on what else the process built) and the
    split's images."""

    digest = hashlib.sha256()
    model = parts["features"]
    pre = model.get_layer("preprocessing")
    described = {
        "spec": parts.get("spec"),
        "input": list(model.inputs[0].shape[1:]),
        "preprocessing": {k: v for k, v in pre.get_config().items() if k != "name"},
    }
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(f"{value.shape} {value.dtype}".encode())
        digest.update(value.data)
    digest.update(split_key.encode())
    return digest.hexdigest()


def extract_features(
    parts, pipelines, split, directory, *, batch_size=64, log=print, every=10.0
):
    """Stage 1's features of one split, written to `directory` as they are
    computed (`kerazoo.data.features.FeatureFile`): a pass killed halfway goes
    on from its last finished batch, and a finished file of the same content
    key is reused. Logs progress (images/s, ETA) every `every` seconds.

    Returns:
        The `FeatureFile`.
    """

    source = pipelines.data.splits[split]
    key = features_key(parts, source.key())
    dim = parts["features"].outputs[0].shape[-1]
    path = pathlib.Path(directory) / f"features-{split}-{key[:16]}.npy"
    file = FeatureFile(path, source.size, dim, key)
    if file.complete:
        log(f"stage 1 features ({split}): reusing {path.name} ({file.rows:,} images)")
        return file
    start = file.next_image
    if start:
        log(
            f"stage 1 features ({split}): going on from image {start:,} of "
            f"{source.size:,} ({path.name})"
        )
    extract = _extractor(parts)
    began = last = time.perf_counter()
    done = 0
    for x, y, index in pipelines.dataset(
        split, batch_size, start=start, with_index=True
    ):
        index = index.numpy()
        file.append(extract(x), y.numpy(), int(index[-1]) + 1, index)
        done += len(y)
        now = time.perf_counter()
        if now - last >= every:
            last = now
            rate = done / (now - began)
            left = source.size - file.next_image
            log(
                f"stage 1 features ({split}): {file.next_image:,}/{source.size:,} "
                f"images, {rate:,.0f} images/s, ETA {left / rate:,.0f} s"
            )
    file.finish()
    return file


def precision_policy(precision):
    """The dtype policy for a recipe's `precision` (`auto`: mixed_float16 on a
    GPU of compute capability 7.0 or more, else float32)."""
    if precision != "auto":
        return precision

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get(
            "compute_capability", (0, 0)
        )
        if tuple(capability) >= (7, 0):
            return "mixed_float16"
    return "float32"


def run(recipe, *, restart=False, log=print, cluster=None):
    """Runs (or resumes) a fine-tuning recipe.

    Args:
        recipe: A `kerazoo.recipes.Recipe` (`load_recipe(path)`).
        restart: Delete the run in `recipe.output_dir` and start over. Without it
            an interrupted run resumes from its last completed epoch, and a
            finished one is reported, not repeated.
        log: Where progress lines go.
        cluster: A `kerazoo.distributed.Cluster` for `distribution:
            data_parallel` (None: `Cluster.from_env()`). Only process 0 writes
            into `output_dir`; the others keep a private copy of the run in a
            temporary folder, removed when they end.

    Returns:
        The report dict (also in `output_dir/report.json`); its top-level
        `test_accuracy` is the fine-tuned model's accuracy on the test split.
    """
    world = _world(recipe, cluster, log)
    _check_optimizers(recipe)
    policy = precision_policy(recipe.precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        with warnings.catch_warnings():
            # Image pipelines drop broken files as they find them, so their length
            # is unknown until a pass ends; Keras warns at the end of every such pass.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            if policy != "float32":
                log(
                    f"precision: {policy} (variables in float32, the classifier's "
                    "output in float32)"
                )
            report = _run(recipe, restart=restart, log=log, world=world)
            if recipe.baseline == "scratch":
                report = _with_scratch_baseline(recipe, report, log, world)
            return report
    finally:
        keras.config.set_dtype_policy(previous)


# Where a run's scratch baseline is trained, inside its output_dir.
BASELINE_DIR = "baseline_scratch"


def scratch_recipe(recipe):
    """The baseline of `recipe` (`baseline: scratch`): the same network and
    data split, from random weights (`model.weights: null`, batch norms
    trained), every layer trained from the first epoch for the epochs of both
    stages together, with stage 1's optimizer and schedule (a learning rate for
    new weights, not stage 2's for pretrained ones) and stage 2's other
    settings; no export, search or further baseline. It runs in
    `OUTPUT_DIR/baseline_scratch`, so it resumes as any run does."""
    data = recipe.to_dict()
    epochs = recipe.stage1.epochs + recipe.stage2.epochs
    data["model"]["weights"] = None
    data.update(
        baseline="none",
        batchnorm="train",
        export=None,
        search=None,
        output_dir=str(pathlib.Path(recipe.output_dir) / BASELINE_DIR),
    )
    data["stage1"]["epochs"] = 0
    data["stage2"].update(
        epochs=epochs,
        unfreeze="all",
        body_lr_multiplier=1.0,
        layer_decay=None,
        optimizer=data["stage1"]["optimizer"],
        schedule=data["stage1"]["schedule"],
    )
    return validate_recipe(data, source=f"the scratch baseline of {recipe.name}")


def _with_scratch_baseline(recipe, report, log, world):
    """Trains `scratch_recipe(recipe)` and adds its numbers to `report` (and
    to report.json, written by process 0)."""
    baseline = scratch_recipe(recipe)
    log(
        f"baseline: {recipe.model.name} from random weights, every layer for "
        f"{baseline.stage2.epochs} epochs -> {baseline.output_dir}"
    )
    theirs = _run(baseline, restart=False, log=log, world=world)
    gain = report["test_accuracy"] - theirs["test_accuracy"]
    report["baseline"] = {
        "kind": "scratch",
        "output_dir": baseline.output_dir,
        "epochs": baseline.stage2.epochs,
        "test_accuracy": theirs["test_accuracy"],
        "seconds": theirs["seconds"],
        "gain": gain,
    }
    if world.writer:
        replace_text(
            pathlib.Path(recipe.output_dir) / "report.json",
            json.dumps(report, indent=2),
        )
    log(
        f"test accuracy: {report['test_accuracy']:.4f} fine-tuned from "
        f"{recipe.model.weights}, {theirs['test_accuracy']:.4f} from scratch "
        f"({gain:+.4f})"
    )
    return report


def _check_optimizers(recipe):
    """Builds each stage's optimizer once, before anything is written or
    trained: the recipe has checked the arguments' names and types without
    Keras, their values are the optimizer's to check (clipnorm with
    clipvalue, say), and stage 2's must not fail after stage 1 has run."""
    for where in ("stage1", "stage2"):
        config = getattr(recipe, where).optimizer.as_dict()
        if config["learning_rate"] == "auto":  # a number when the stage starts
            config["learning_rate"] = 1e-3
        try:
            optimizers.get(config)
        except (TypeError, ValueError) as error:
            raise FinetuneError(
                f"{where}.optimizer: the optimizer cannot be built: {error}"
            ) from None


def _world(recipe, cluster, log):
    """The processes of the run (`distributed.World`), the cluster joined
    when the recipe is data_parallel."""
    if recipe.distribution != "data_parallel":
        if cluster is not None and cluster.given:
            raise FinetuneError(
                "--coordinator, --num-processes and --process-id start a "
                f"data_parallel run, but the recipe's distribution is "
                f"{recipe.distribution}; set distribution: data_parallel "
                "(--set distribution=data_parallel)"
            )
        return distributed.World()
    try:
        world = distributed.start(cluster, log)
    except distributed.DistributedError as error:
        raise FinetuneError(str(error)) from None
    log(f"distribution: {world.describe()}")
    return world


def _private_copy(recipe, world):
    """For a process other than 0: a copy of process 0's run (not its
    caches) in a folder of its own, and the recipe writing there, so that this
    process resumes from the same epoch and writes nothing of the run's.

    The folder is `KERAZOO_PRIVATE_DIR` when set (emptied first, kept after),
    else a new temporary one, returned to be removed when the run ends."""
    given = os.environ.get(distributed.PRIVATE_DIR)
    if given:
        scratch = pathlib.Path(given)
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir(parents=True)
    else:
        scratch = pathlib.Path(
            tempfile.mkdtemp(prefix=f"kerazoo-process{world.process_id}-")
        )
    source = pathlib.Path(recipe.output_dir)
    if source.is_dir():
        shutil.copytree(
            source,
            scratch,
            ignore=shutil.ignore_patterns("cache", "logs"),
            dirs_exist_ok=True,
        )
    data = recipe.data.model_copy(update={"cache_dir": None})
    private = recipe.model_copy(
        update={"output_dir": str(scratch), "export": None, "data": data}
    )
    return private, (None if given else scratch)


def _progress(run_):
    """Numbers every process must agree on before training: which stages are
    done, the epochs their backups hold, whether the run finished."""
    values = [int(run_.finished)]
    for n in (1, 2):
        backup = run_.dir / "backup" / f"stage{n}"
        values += [int(run_.stage(n)["done"]), EpochBackup.completed_epochs(backup)]
    return values


def _run(recipe, *, restart, log, world=None):
    world = world or distributed.World()
    scratch, run_dir = None, recipe.output_dir
    if world.writer:
        run_ = _Run(recipe, restart=restart)
    # Process 0 has cleared (--restart) or checked its output_dir.
    world.barrier("kerazoo-output-dir")
    if not world.writer:
        recipe, scratch = _private_copy(recipe, world)
        log(
            f"process {world.process_id}: a private copy of the run in "
            f"{recipe.output_dir} (process 0 writes {run_dir})"
        )
        run_ = _Run(recipe)
    try:
        world.same_everywhere(_progress(run_), "the run's progress")
        return _run_in(run_, recipe, log, world)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _run_in(run_, recipe, log, world):
    if run_.finished:
        report = json.loads((run_.dir / "report.json").read_text())
        log(
            f"{run_.dir} already holds this finished run: test accuracy "
            f"{report['test_accuracy']:.4f}. Use --restart to train again."
        )
        return report
    keras.utils.set_random_seed(recipe.seed)
    data = load_recipe_data(recipe)
    if world.distributed:
        # Each process trains on its own shard; validation and test are whole.
        shard = data.sharded(world.process_id, world.num_processes)
        local = dataclasses.replace(
            data, splits={**data.splits, "train": shard.splits["train"]}
        )
    else:
        local = data
    log(f"data: {data.summary()}")
    for line in data.class_counts():
        log(f"  {line if len(line) <= 200 else line[:197] + '...'}")
    pipelines, plan, cache_dir = _pipelines(recipe, data, local, run_.dir, log)
    log(f"data cache: {plan.reason}")
    try:
        return _stages(run_, recipe, data, pipelines, plan, cache_dir, log, world)
    finally:
        pipelines.close()


@dataclasses.dataclass
class Stage:
    """One stage of a run: what it trains and on what. `_stages` runs each the
    same way (compile with a fresh optimizer, fit with the stage's callbacks,
    restore its best epoch, save, record).

    Attributes:
        number: 1 or 2.
        spec: The recipe's `stage1` / `stage2` section.
        target: The model `fit` trains (the head on features, the model with a
            frozen body, or the whole model).
        prepare: Freezes / unfreezes the body; returns what the log says of it.
        train, validation: Callables giving the datasets (made once the body is
            prepared, so a reused stage builds nothing).
        optimizer: Callable giving the stage's fresh optimizer.
        test: Callable giving the test dataset evaluated when the stage ends, or
            None.
        loss: What `compile` gets (`_loss`); its labels are one-hot unless it
            is sparse categorical crossentropy.
        record: Extra facts for the report (filled by `prepare`).
    """

    number: int
    spec: object
    target: keras.Model
    prepare: typing.Callable[[], str]
    train: typing.Callable
    validation: typing.Callable
    optimizer: typing.Callable
    test: typing.Callable | None = None
    loss: object = "sparse_categorical_crossentropy"
    record: dict = dataclasses.field(default_factory=dict)
    steps: int | None = None
    padding: dict = dataclasses.field(
        default_factory=lambda: {
            "validation": distributed.Padding(),
            "test": distributed.Padding(),
        }
    )


def _stage1(ctx):
    recipe, parts, pipelines = ctx.recipe, ctx.parts, ctx.pipelines
    spec = recipe.stage1
    batch = _batch_size(spec, ctx.n_train)
    augment = _augment(recipe, spec)
    mixes = _mixes(recipe, spec)
    cached = (
        spec.cache_features
        and augment is None
        and not any(mixes.values())
        and ctx.nan_batch(1) is None
        # Feature files are one process's; data_parallel runs the frozen body.
        and not ctx.world.distributed
    )
    stage = Stage(
        1, spec, parts["head"] if cached else parts["frozen"], None, None, None, None
    )
    stage.loss, loss = _loss(spec, mixes)
    one_hot = not isinstance(stage.loss, str)
    files = {}

    def prepare():
        freezing.freeze(parts["body"])
        stage.record["cached_features"] = cached
        stage.record["loss"] = loss
        if cached:
            start = time.perf_counter()
            for split in ("train", "validation", "test"):
                files[split] = extract_features(
                    parts, pipelines, split, ctx.cache_dir, log=ctx.log
                )
            stage.record["feature_seconds"] = time.perf_counter() - start
            stage.record["feature_folding"] = parts.get(
                "_folding", "reused from the cache"
            )
            ctx.log(
                f"stage 1: body features of "
                f"{sum(f.rows for f in files.values()):,} images in "
                f"{stage.record['feature_seconds']:.1f} s "
                f"({stage.record['feature_folding']}), kept in {ctx.cache_dir}"
            )
        return (
            f"stage 1: frozen body, training the head for {spec.epochs} epochs "
            f"(batch {batch}, {spec.optimizer.name} lr "
            f"{spec.optimizer.learning_rate}"
            f"{', on cached features' if cached else ''}"
            f"{f', {loss}' if one_hot else ''})"
        )

    def dataset(split, batch_size, training=False):
        if cached:
            file = files[split]
            return feature_pipeline(
                file,
                file.labels,
                batch_size,
                training=training,
                seed=recipe.seed,
                num_classes=ctx.num_classes if one_hot else None,
            )
        if training:
            return ctx.training(
                1,
                batch_size,
                lambda local: pipelines.dataset(
                    "train",
                    local,
                    training=True,
                    augment=augment,
                    **mixes,
                    one_hot=one_hot,
                    seed=recipe.seed,
                    nan_batch=ctx.nan_batch(1),
                ),
            )
        return ctx.evaluation(
            64,
            lambda size: pipelines.dataset(split, size, one_hot=one_hot),
            stage.padding[split],
        )

    stage.prepare = prepare
    stage.train = lambda: dataset("train", batch, training=True)
    stage.validation = lambda: dataset("validation", 256)
    stage.test = lambda: dataset("test", 256)
    stage.steps = ctx.world.steps(ctx.n_train, batch)
    stage.optimizer = lambda: _optimizer(stage.spec, math.ceil(ctx.n_train / batch))
    return stage


def _stage2(ctx):
    recipe, parts = ctx.recipe, ctx.parts
    spec = recipe.stage2
    batch = _batch_size(spec, ctx.n_train)
    # Set by prepare: layer_decay's groups are the stages it left trainable.
    multipliers = {}
    stage = Stage(2, spec, parts["model"], None, None, None, None)
    mixes = _mixes(recipe, spec)
    stage.loss, loss = _loss(spec, mixes)
    one_hot = not isinstance(stage.loss, str)

    def prepare():
        trainable = freezing.unfreeze(parts["body"], spec.unfreeze, recipe.batchnorm)
        multipliers.clear()
        multipliers.update(
            freezing.lr_multipliers(
                parts["body"], spec.body_lr_multiplier, spec.layer_decay
            )
            or {}
        )
        stage.record["trainable_body_weights"] = len(trainable)
        stage.record["loss"] = loss
        stage.record["lr_multipliers"] = dict(multipliers)
        decay = f"layer decay {spec.layer_decay:g}: " if spec.layer_decay else ""
        return (
            f"stage 2: {len(trainable)} body weights unfrozen ({spec.unfreeze}), "
            f"batch norm {recipe.batchnorm}, {spec.epochs} epochs (batch {batch}, "
            f"{spec.optimizer.name} lr {spec.optimizer.learning_rate}, lr "
            f"multipliers {decay}{freezing.describe_multipliers(multipliers)}"
            f"{f', {loss}' if one_hot else ''})"
        )

    stage.prepare = prepare
    stage.train = lambda: ctx.training(
        2,
        batch,
        lambda local: ctx.pipelines.dataset(
            "train",
            local,
            training=True,
            augment=_augment(recipe, spec),
            **mixes,
            one_hot=one_hot,
            seed=recipe.seed + 1,
            nan_batch=ctx.nan_batch(2),
        ),
    )
    stage.validation = lambda: ctx.evaluation(
        64,
        lambda size: ctx.pipelines.dataset("validation", size, one_hot=one_hot),
        stage.padding["validation"],
    )
    stage.steps = ctx.world.steps(ctx.n_train, batch)
    stage.optimizer = lambda: _optimizer(
        stage.spec, math.ceil(ctx.n_train / batch), multipliers
    )
    return stage


@dataclasses.dataclass
class _Context:
    recipe: object
    run: _Run
    parts: dict
    pipelines: object
    cache_dir: pathlib.Path
    n_train: int
    log: typing.Callable
    num_classes: int = 0
    class_weight: dict | None = None
    world: distributed.World = dataclasses.field(default_factory=distributed.World)

    def nan_batch(self, n):
        """The training batch of stage `n` that gets NaN images, from the
        test-only fault injection `KERAZOO_FAULT_NAN_BATCH=STAGE,BATCH` (the
        batch counted across the stage's epochs from 0), or None."""
        fault = os.environ.get(FAULT_NAN_BATCH)
        if not fault:
            return None
        try:
            stage, batch = (int(part) for part in fault.split(","))
        except ValueError:
            raise FinetuneError(
                f"{FAULT_NAN_BATCH} must be STAGE,BATCH (two integers); "
                f"received {fault!r}"
            ) from None
        return batch if stage == n else None

    def training(self, n, batch, dataset):
        """Stage `n`'s training batches: `dataset(batch)` in one process;
        under data_parallel, this process's endless share of each global
        `batch` (`World.training`)."""
        try:
            local = self.world.local_batch(batch, f"stage{n}.batch_size")
        except distributed.DistributedError as error:
            raise FinetuneError(str(error)) from None
        return self.world.training(dataset(local), local)

    def evaluation(self, batch, dataset, padding=None):
        """`dataset(batch)` in one process; under data_parallel, this
        process's rows of each global batch (`World.evaluation`)."""
        batch = self.world.evaluation_batch(batch)
        return self.world.evaluation(dataset(batch), batch, padding)


def _range_test(stage, class_weight=None, log=print, **options):
    """The LR range test (`kerazoo.finetune.lr_find`) on a prepared stage:
    its target, training batches, loss and optimizer (its multipliers too),
    at a constant learning rate that the test drives."""
    spec = stage.spec
    probe = spec.optimizer.model_copy(
        update={"learning_rate": options.get("min_lr", lr_find.MIN_LR)}
    )
    stage.spec = spec.model_copy(
        update={"optimizer": probe, "schedule": Constant(name="constant"), "ema": None}
    )
    try:
        optimizer = stage.optimizer()
    finally:
        stage.spec = spec
    return lr_find.range_test(
        stage.target,
        stage.train(),
        stage.loss,
        optimizer,
        class_weight=class_weight,
        log=log,
        **options,
    )


def _auto_learning_rate(ctx, stage, record, strategy):
    """`stage.spec` with `learning_rate: auto` replaced by the LR range test's
    suggestion; the test's plot and numbers go to `lr_find_stageN.png/.json`,
    the choice to the stage's record (kept for a resumed stage). The model's
    weights are put back after the test."""
    n, spec = stage.number, stage.spec
    if "learning_rate" not in record:
        ctx.log(
            f"stage {n}: learning_rate auto: the LR range test, "
            f"{lr_find.MIN_LR:g} to {lr_find.MAX_LR:g} over {lr_find.STEPS} steps"
        )
        with strategy.scope():
            result = _range_test(stage, ctx.class_weight, ctx.log)
        name = f"lr_find_stage{n}"
        lr_find.write(result, ctx.run.dir, name, title=f"{ctx.recipe.name}: stage {n}")
        record["learning_rate"] = result["suggestion"]
        record["lr_find"] = {
            "suggestion": result["suggestion"],
            "rule": result["rule"],
            "range": [result["min_lr"], result["max_lr"]],
            "steps_run": result["steps_run"],
            "stopped": result["stopped"],
            "plot": f"{name}.png",
        }
        ctx.run.save()
    chosen = spec.optimizer.model_copy(
        update={"learning_rate": record["learning_rate"]}
    )
    return spec.model_copy(update={"optimizer": chosen})


def _run_stage(ctx, stage, strategy):
    """Runs (or reloads) one stage; the whole model holds its result after."""
    run_, model, log = ctx.run, ctx.parts["model"], ctx.log
    n, spec = stage.number, stage.spec
    record = run_.stage(n)
    weights = run_.dir / f"stage{n}.weights.h5"
    if record["done"]:
        model.load_weights(weights)
        log(
            f"stage {n}: done earlier ({record.get('summary', '')}); loading its "
            "weights"
        )
        return
    if not spec.epochs:
        record.update(done=True, summary="skipped (0 epochs)")
        model.save_weights(weights)
        run_.save()
        return
    describe = stage.prepare()
    record.update(stage.record)
    if spec.optimizer.learning_rate == "auto":
        stage.spec = spec = _auto_learning_rate(ctx, stage, record, strategy)
        describe += f"; lr {record['learning_rate']:.3g} from the LR range test"
    if spec.ema is not None:
        record["ema"] = {"decay": spec.ema.decay, "start_epoch": spec.ema.start_epoch}
        steps = math.ceil(ctx.n_train / _batch_size(spec, ctx.n_train))
        describe += "; " + weight_ema.describe(spec.ema, steps, spec.epochs)
    train, validation = stage.train(), stage.validation()
    # Evaluation rows that pad a last batch under data_parallel weigh 0, and
    # only weighted metrics see the weights.
    metrics = {"weighted_metrics" if ctx.world.distributed else "metrics": ["accuracy"]}
    with strategy.scope():
        stage.target.compile(
            optimizer=stage.optimizer(),
            loss=stage.loss,
            jit_compile=ctx.recipe.jit_compile,
            **metrics,
        )
    record["jit_compile"] = bool(stage.target.jit_compile)
    if record["jit_compile"]:
        describe += "; XLA"
    log(describe)
    summary = _StageSummary()
    callbacks, best = _callbacks(run_, n, spec, model, summary)
    if ctx.world.distributed:
        callbacks.insert(0, _PaddedLoss(stage.padding["validation"]))
    _fit(
        run_,
        n,
        stage.target,
        train,
        validation,
        spec,
        callbacks,
        log,
        class_weight=ctx.class_weight,
        steps_per_epoch=stage.steps,
    )
    last = summary.logs.get("val_accuracy", float("nan"))
    record["last_epoch"] = summary.epochs
    record["best_epoch"] = best.best_epoch
    if ctx.recipe.restore_best and best.best_epoch is not None:
        if best.best_epoch != summary.epochs:
            model.load_weights(best.path)
            log(
                f"stage {n}: restoring epoch {best.best_epoch} (best "
                f"{best.monitor} {best.sign * best.best:.4f}; the last epoch had "
                f"{last:.4f})"
            )
        record["restored_epoch"] = best.best_epoch
        record["val_accuracy"] = best.sign * best.best
    else:
        record["val_accuracy"] = last
    summary_text = f"val_accuracy {record['val_accuracy']:.4f}"
    if stage.test is not None:
        padding = stage.padding["test"]
        padding.reset()
        record["test_loss"], record["test_accuracy"] = (
            float(v) for v in stage.target.evaluate(stage.test(), verbose=0)
        )
        if ctx.world.distributed:
            record["test_loss"] *= padding.loss_scale()
        summary_text += f", test accuracy {record['test_accuracy']:.4f}"
    model.save_weights(weights)
    record.update(done=True, summary=summary_text)
    run_.save()
    log(f"stage {n} done: {record['seconds']:.1f} s, {summary_text}")


def _pipelines(recipe, data, local, out, log):
    """The recipe's pipelines over `local` (this process's part of `data`),
    with the cache planned for all of `data`: `(pipelines, plan, cache_dir)`."""
    size = recipe.model.image_size
    cache_dir = pathlib.Path(recipe.data.cache_dir or pathlib.Path(out) / "cache")
    streamed = not all(s.random_access for s in data.splits.values())
    plan = plan_cache(recipe.data.cache, size, data.sizes, cache_dir, streamed=streamed)
    pipelines = Pipelines(
        local,
        size,
        cache=plan.mode,
        cache_dir=plan.directory,
        shuffle_buffer=recipe.data.shuffle_buffer,
        deterministic=recipe.data.deterministic,
        log=log,
    )
    return pipelines, plan, cache_dir


def _stages(run_, recipe, data, pipelines, plan, cache_dir, log, world):
    size = recipe.model.image_size
    weights = class_weights(recipe.data.class_weight, data)
    if weights is not None:
        how = "balanced" if recipe.data.class_weight == "balanced" else "given"
        line = ", ".join(
            f"{name} {weights[i]:.3g}" for i, name in enumerate(data.class_names)
        )
        log(f"class weights ({how}): {line[:197] + '...' if len(line) > 200 else line}")
    strategy = _strategy(recipe.distribution)
    if recipe.distribution == "mirrored":
        log(
            f"distribution: {recipe.distribution}, "
            f"{strategy.num_replicas_in_sync} replicas"
        )
    with strategy.scope():
        parts = build(recipe, data.num_classes)
    model = parts["model"]
    log(
        f"model: {recipe.model.name} ({recipe.model.weights or 'random'} weights), "
        f"input {size[0]}x{size[1]}, {model.count_params():,} parameters, "
        f"{data.num_classes} classes"
    )
    ctx = _Context(
        recipe,
        run_,
        parts,
        pipelines,
        cache_dir,
        data.sizes["train"],
        log,
        num_classes=data.num_classes,
        class_weight=weights,
        world=world,
    )
    for stage in (_stage1(ctx), _stage2(ctx)):
        _run_stage(ctx, stage, strategy)
    batch = world.evaluation_batch(64)
    test = pipelines.dataset("test", batch, ordered=True)

    def predict(images, target=model):
        return world.predict(target, images, batch)

    return _finish(
        run_, data, model, parts["body"], test, pipelines, plan, log, predict
    )


def _final_weights(stages):
    """Which epoch the final model's weights are from, in words."""
    for name in ("stage2", "stage1"):
        record = stages[name]
        if record.get("last_epoch"):
            epoch = record.get("restored_epoch") or record["last_epoch"]
            why = "best val_accuracy" if "restored_epoch" in record else "last"
            if "ema" in record:
                why += f", EMA of the weights, decay {record['ema']['decay']:g}"
            return f"{name} epoch {epoch} of {record['last_epoch']} ({why})"
    return "initial weights (no stage trained)"


def _finish(run, data, model, body, test, pipelines, plan, log, predict=None):
    recipe = run.recipe
    # `test` keeps its order: the labels and the predictions are of one order.
    labels = np.concatenate(list(test.map(lambda x, y: y).as_numpy_iterator()))
    if predict is None:
        probabilities = model.predict(test.map(lambda x, y: x), verbose=0)
    else:
        probabilities = predict(test)
    predictions = np.argmax(probabilities, axis=-1)
    accuracy = float(np.mean(labels == predictions))
    tta_result = None
    if recipe.tta is not None:
        tta_result = _tta_accuracy(recipe.tta, model, test, labels, predict)
        tta_result["test_accuracy_without"] = accuracy
        tta_result["gain"] = tta_result["test_accuracy"] - accuracy
        log(
            f"test-time augmentation ({tta.describe(**recipe.tta.model_dump())}): test "
            f"accuracy {tta_result['test_accuracy']:.4f}, without "
            f"{accuracy:.4f} ({tta_result['gain']:+.4f})"
        )
    rows = reporting.read_stage_history(run.dir / "history_stage1.csv", 1)
    rows += reporting.read_stage_history(run.dir / "history_stage2.csv", 2)
    reporting.write_history(rows, run.dir / "history.csv")
    reporting.plot_curves(rows, run.dir / "curves.png", title=recipe.name)
    matrix = reporting.confusion_matrix(labels, predictions, data.num_classes)
    reporting.plot_confusion(
        matrix,
        data.class_names,
        run.dir / "confusion.png",
        title=f"{recipe.name}: test accuracy {accuracy:.4f}",
    )
    # The saved model is uncompiled and fully trainable: the stage-2 freezing and
    # optimizer belong to this run, not to whoever loads the file next.
    body.trainable = True
    tmp = run.dir / "model.tmp.keras"
    keras.Model(model.inputs[0], model.outputs[0], name=model.name).save(tmp)
    os.replace(tmp, run.dir / "model.keras")
    skipped = pipelines.skipped()
    if skipped:
        log(f"data: {len(skipped)} unreadable files skipped (listed in report.json)")
    stages = {}
    for n in (1, 2):
        record = dict(run.stage(n))
        record.pop("done", None)
        record["epochs"] = sum(1 for r in rows if r["stage"] == n)
        stages[f"stage{n}"] = record
    report = {
        "recipe": recipe.to_dict(),
        "data": {
            "uri": data.uri,
            "classes": data.class_names,
            "sizes": data.sizes,
            "cache": plan.as_dict(),
            "skipped_files": [
                {"path": path, "reason": reason} for path, reason in skipped
            ],
            "class_weight": class_weights(recipe.data.class_weight, data),
        },
        "parameters": int(model.count_params()),
        **stages,
        "seconds": sum(
            s["seconds"] + s.get("feature_seconds", 0) for s in stages.values()
        ),
        "test_accuracy": accuracy,
        "final_weights": _final_weights(stages),
        "test_images": len(labels),
        "confusion": matrix.tolist(),
    }
    if tta_result is not None:
        report["tta"] = tta_result
    (run.dir / "report.json").write_text(json.dumps(report, indent=2))
    shutil.rmtree(run.dir / "backup", ignore_errors=True)
    if recipe.export is not None:
        target = export_source(
            run.dir,
            recipe.export.name,
            recipe.export.version,
            out=recipe.export.directory,
            fold=recipe.export.fold,
            freeze=recipe.export.freeze,
            formats=recipe.export.formats,
            overwrite=False,
            log=log,
        )
        report["export"] = str(target)
        (run.dir / "report.json").write_text(json.dumps(report, indent=2))
    run.state["finished"] = True
    run.save()
    return report


def _tta_accuracy(spec, model, test, labels, predict=None):
    """Test accuracy of `model` with test-time augmentation (`spec`: a
    recipe's `tta`), predicted the way the run predicts (`predict(dataset,
    target)`, in every process under data_parallel)."""
    options = {"flips": spec.flips, "crops": spec.crops, "scale": spec.scale}
    averaged = tta.with_tta(model, **options)
    if predict is None:
        probabilities = averaged.predict(test.map(lambda x, y: x), verbose=0)
    else:
        probabilities = predict(test, averaged)
    accuracy = float(np.mean(labels == np.argmax(probabilities, axis=-1)))
    return {
        **options,
        "views": tta.view_names(spec.flips, spec.crops),
        "test_accuracy": accuracy,
    }


def lr_find_dir(recipe):
    """Where `kerazoo lr-find` writes by default: `OUTPUT_DIR/lr_find` when
    OUTPUT_DIR holds a run, else `OUTPUT_DIR-lr_find` (a run refuses an
    output_dir that holds anything else)."""
    output = pathlib.Path(recipe.output_dir)
    if (output / STATE).exists():
        return output / "lr_find"
    return output.with_name(f"{output.name}-lr_find")


def find_learning_rate(recipe, stage=1, *, out=None, log=print, **options):
    """`kerazoo lr-find RECIPE`: the LR range test (`kerazoo.finetune.lr_find`)
    on the recipe's model and data, as the stage would train: stage 1 the head
    on the frozen body (on cached features when the stage caches them),
    stage 2 the body unfrozen as the recipe says, from the stage-1 weights of
    the run in output_dir when there is one. Writes `lr_find.json` and
    `lr_find.png`.

    Args:
        recipe: A `kerazoo.recipes.Recipe`.
        stage: 1 or 2.
        out: Folder of the files (default `lr_find_dir(recipe)`); stage-1
            features are cached in `data.cache_dir`, else in `out/cache`.
        log: Where progress lines go.
        **options: `min_lr`, `max_lr`, `steps`, `smoothing`, `diverge` of
            `lr_find.range_test`.

    Returns:
        The result of `lr_find.range_test`, with `files` (the two paths).
    """
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2. Received: stage={stage!r}")
    out = pathlib.Path(out or lr_find_dir(recipe))
    keras.utils.set_random_seed(recipe.seed)
    data = load_recipe_data(recipe)
    log(f"data: {data.summary()}")
    pipelines, _, cache_dir = _pipelines(recipe, data, data, out, log)
    try:
        parts = build(recipe, data.num_classes)
        ctx = _Context(
            recipe,
            None,
            parts,
            pipelines,
            cache_dir,
            data.sizes["train"],
            log,
            num_classes=data.num_classes,
            class_weight=class_weights(recipe.data.class_weight, data),
        )
        target = _stage1(ctx) if stage == 1 else _stage2(ctx)
        if stage == 2:
            weights = pathlib.Path(recipe.output_dir) / "stage1.weights.h5"
            if weights.exists():
                parts["model"].load_weights(weights)
                log(f"stage 2 starts from the stage-1 weights in {weights}")
            else:
                log(
                    f"no {weights}: stage 2 starts from an untrained head (run "
                    "stage 1 first for a truer curve)"
                )
        log(target.prepare())
        result = _range_test(target, ctx.class_weight, log, **options)
    finally:
        pipelines.close()
    files = lr_find.write(
        result, out, "lr_find", title=f"{recipe.name}: stage {stage} LR range test"
    )
    result["files"] = [str(path) for path in files]
    return result
